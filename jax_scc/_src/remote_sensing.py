"""The SCCs of remote sensing: the pansharpening toolbox's sCC and Zhou's global SCC.

Two definitions that pansharpening papers report under the name "spatial
correlation coefficient", next to the windowed one of sewar and torchmetrics
(:mod:`~jax_scc._src.definition`). Both correlate *features* of the two images
over whole bands instead of small windows:

* **toolbox sCC** (Vivone et al. 2015/2020, the pansharpening toolbox's
  ``SCC.m``): each band is cropped by one pixel on every side, its feature is the
  Sobel gradient magnitude ``sqrt(gy**2 + gx**2)`` (``gy`` the correlation with
  ``[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]``, ``gx`` with its transpose, zero padding
  at the cropped border and an output of the cropped size: MATLAB ``imfilter``'s
  defaults), and the score is the *uncentred* normalised inner product over all
  pixels and bands, ``sum F G / (sqrt(sum F**2) sqrt(sum G**2))``.
* **Zhou's global SCC** (Zhou, Civco & Silander 1998): the high-pass of each band
  (:func:`~jax_scc._src.highpass.high_pass`, by default the 3x3 Laplacian of
  sewar and torchmetrics, which is Zhou's mask), then the *centred* correlation
  coefficient over the whole band. A sample's score is the mean over its bands.

Both give 0 where a denominator is 0 (a band without structure), like the
windowed map, and NaN for a band with no counted pixel (``ignore_nans``).

Sums over a band are accumulated as double-floats (TwoSum, the arithmetic of
:mod:`~jax_scc._src.state`, in one pass), so that an 8192 x 8192 band sums as
accurately as in float64 (``python benchmarks/remote_sensing_sums.py``).

Running totals (:class:`PooledSCCState`) pool the pixels of a stream of batches
per band: count, means, centred second moments and the co-moment, each a
double-float, merged with Chan et al.'s centred update. Either definition is
computed from them (the uncentred sums of the toolbox follow from the centred
ones without cancellation, since its features are non-negative).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jax_scc._src import checks, highpass
from jax_scc._src.config import Config, Filter, check_hp_filter, check_reduction
from jax_scc._src.state import _df_add

DEFINITIONS = ("toolbox", "zhou")

_SOBEL = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


# --- accurate sums -------------------------------------------------------------------


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def df_sums(xs: Tuple[jax.Array, ...], axes: Tuple[int, ...] = (-2, -1)) -> Tuple[Tuple[jax.Array, jax.Array], ...]:
    """The sums of the arrays ``xs`` (of one shape) over ``axes``, each as a
    double-float ``(hi, lo)``.

    One pass over all of them (a variadic ``lax.reduce``) whose accumulators
    are double-floats: every addition's rounding error is carried along
    (TwoSum), so each result is within ~n * 2**-48 (float32) of the exact sum
    of the values, whatever their number and signs, however XLA orders the
    additions. Grouping sums into one pass shares the loop. On an 8192 x 8192
    band (``benchmarks/remote_sensing_sums.py``) the program of both
    definitions' sums took 1.3x the time it takes with plain ``jnp.sum``s
    (one sum alone: 14x; the features dominate). Their tangents are the
    plain sums of the tangents.
    """
    axes = tuple(sorted({a % xs[0].ndim for a in axes}))
    zero = jnp.zeros((), xs[0].dtype)

    def add(a, b):
        out = []
        for i in range(0, len(a), 2):
            out += _df_add(a[i], a[i + 1], b[i], b[i + 1])
        return tuple(out)

    operands = [y for x in xs for y in (x, jnp.zeros_like(x))]
    out = lax.reduce(tuple(operands), (zero,) * len(operands), add, axes)
    return tuple((out[i], out[i + 1]) for i in range(0, len(out), 2))


@df_sums.defjvp
def _df_sums_jvp(axes, primals, tangents):
    (xs,), (dxs,) = primals, tangents
    out = df_sums(xs, axes)
    axes = tuple(a % xs[0].ndim for a in axes)
    d_out = []
    for dx in dxs:
        d = jnp.sum(dx, axis=axes)
        d_out.append((d, jnp.zeros_like(d)))
    return out, tuple(d_out)


def df_sum(x: jax.Array, axes: Tuple[int, ...] = (-2, -1)) -> Tuple[jax.Array, jax.Array]:
    """The sum of ``x`` over ``axes`` as a double-float (:func:`df_sums`)."""
    return df_sums((x,), axes)[0]


def accurate_sums(*xs: jax.Array, axes: Tuple[int, ...] = (-2, -1)) -> Tuple[jax.Array, ...]:
    """:func:`df_sums` of ``xs``, each rounded once to its dtype."""
    return tuple(hi + lo for hi, lo in df_sums(tuple(xs), axes))


def accurate_sum(x: jax.Array, axes: Tuple[int, ...] = (-2, -1)) -> jax.Array:
    """:func:`df_sum` rounded once to the dtype of ``x``."""
    hi, lo = df_sum(x, axes)
    return hi + lo


def _ratio(num: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """``num / (sqrt(a) sqrt(b))``, 0 where ``a`` or ``b`` is 0 (masked before the
    square roots, so gradients stay finite); NaN propagates."""
    a, b = jnp.maximum(a, 0), jnp.maximum(b, 0)
    zero = ((a == 0) | (b == 0)) & ~jnp.isnan(num + a + b)
    one = jnp.ones_like(a)
    den = jnp.sqrt(jnp.where(zero, one, a)) * jnp.sqrt(jnp.where(zero, one, b))
    return jnp.where(zero, jnp.zeros_like(num), num / den)


# --- the features --------------------------------------------------------------------


def _shift(x: jax.Array, di: int, dj: int) -> jax.Array:
    """``x[i + di, j + dj]`` over the last two axes, zero outside (``|d| <= 1``)."""
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)])
    h, w = x.shape[-2:]
    return xp[..., 1 + di : 1 + di + h, 1 + dj : 1 + dj + w]


def sobel_magnitude(x: jax.Array) -> jax.Array:
    """``sqrt(gy**2 + gx**2)`` of ``(..., H, W)`` planes, zero padded, same size.

    ``gy`` is the correlation with ``[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]`` and
    ``gx`` with its transpose (MATLAB ``imfilter(x, fspecial('sobel'))``). Each
    is formed from differences of opposite taps, so it is exactly 0 where the
    taps are equal. The magnitude has a zero gradient where it is 0.
    """
    s = {(di, dj): _shift(x, di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)}
    two = jnp.asarray(2, x.dtype)
    gy = (s[-1, -1] - s[1, -1]) + two * (s[-1, 0] - s[1, 0]) + (s[-1, 1] - s[1, 1])
    gx = (s[-1, -1] - s[-1, 1]) + two * (s[0, -1] - s[0, 1]) + (s[1, -1] - s[1, 1])
    sq = gy * gy + gx * gx
    zero = sq == 0  # not `sq > 0`: NaN propagates
    return jnp.where(zero, jnp.zeros_like(sq), jnp.sqrt(jnp.where(zero, jnp.ones_like(sq), sq)))


def _dilate(mask: jax.Array, kh: int, kw: int) -> jax.Array:
    """OR over ``kh x kw`` neighbourhoods of an already padded mask ("valid")."""
    if kh == 1 and kw == 1:
        return mask
    dims = (1,) * (mask.ndim - 2) + (kh, kw)
    return lax.reduce_window(mask, False, lax.bitwise_or, dims, (1,) * mask.ndim, "VALID")


@dataclasses.dataclass(frozen=True)
class RSConfig:
    """Static configuration of a remote-sensing SCC (hashable).

    Attributes:
      definition: ``"toolbox"`` or ``"zhou"``.
      hp_filter: Zhou's high-pass filter (``None`` for the toolbox).
      ignore_nans: NaN input pixels are missing data.
    """

    definition: str = "toolbox"
    hp_filter: Optional[Filter] = None
    ignore_nans: bool = False


def make_rs_config(definition: Any, hp_filter: Any = None, ignore_nans: Any = False) -> RSConfig:
    """Validates the options of a remote-sensing SCC call.

    Raises:
      ValueError: an unknown ``definition``; a filter given with the toolbox's.
      TypeError: ``ignore_nans`` is not a Python bool; a bad ``hp_filter``.
    """
    if not isinstance(definition, str) or definition not in DEFINITIONS:
        raise ValueError(f"`definition` must be 'toolbox' or 'zhou', got {definition!r}.")
    if not isinstance(ignore_nans, bool):
        raise TypeError(
            f"`ignore_nans` must be a Python bool (it is static configuration), got "
            f"{ignore_nans!r} of type {type(ignore_nans).__name__}."
        )
    if definition == "toolbox":
        if hp_filter is not None:
            raise ValueError(
                "`hp_filter` is not an option of the toolbox sCC (its feature is the Sobel "
                f"gradient magnitude), got {hp_filter!r}."
            )
        return RSConfig("toolbox", None, ignore_nans)
    return RSConfig("zhou", check_hp_filter(hp_filter), ignore_nans)


def _checked(preds: ArrayLike, target: ArrayLike, config: RSConfig, data_format: str):
    """Checked ``(N, C, H, W)`` inputs of the compute dtype."""
    if not isinstance(data_format, str) or data_format not in ("NCHW", "NHWC"):
        raise ValueError(f"`data_format` must be 'NCHW' or 'NHWC', got {data_format!r}.")
    hp_filter = config.hp_filter if config.hp_filter is not None else _SOBEL
    p, t = checks.check_pair(preds, target, Config(hp_filter, 1, data_format))
    if p.ndim == 3:
        p, t = p[:, None], t[:, None]
    elif data_format == "NHWC":
        p, t = jnp.moveaxis(p, -1, 1), jnp.moveaxis(t, -1, 1)
    h, w = p.shape[-2:]
    if config.definition == "toolbox" and min(h, w) < 3:
        raise ValueError(
            f"the toolbox sCC crops one pixel on every side: images must be at least "
            f"3x3, got {h}x{w} (H x W)."
        )
    return p, t


def features(p: jax.Array, t: jax.Array, config: RSConfig):
    """The two feature images of ``(N, C, H, W)`` inputs and which pixels count.

    Returns:
      ``(fp, ft, keep)``: the toolbox's Sobel magnitudes of the cropped bands,
      ``(N, C, H - 2, W - 2)``, or Zhou's high-passed bands, ``(N, C, H, W)``;
      ``keep`` is boolean of the same shape (``None``: every pixel counts).
      With ``ignore_nans``, a pixel is left out when its footprint (the filter's
      support: zero padding at the toolbox's cropped border, symmetric reflection
      for Zhou's high-pass) holds a NaN of ``preds`` or ``target`` in that band.
    """
    if config.definition == "toolbox":
        p, t = p[..., 1:-1, 1:-1], t[..., 1:-1, 1:-1]
    keep = None
    if config.ignore_nans:
        missing = jnp.isnan(p) | jnp.isnan(t)
        p, t = (jnp.where(missing, jnp.zeros_like(x), x) for x in (p, t))
        if config.definition == "toolbox":
            padded = jnp.pad(missing, [(0, 0), (0, 0), (1, 1), (1, 1)])
            keep = ~_dilate(padded, 3, 3)
        else:
            kh, kw = len(config.hp_filter), len(config.hp_filter[0])
            padded = highpass.pad_for_high_pass(missing, config.hp_filter)
            keep = ~_dilate(padded, kh, kw)
    if config.definition == "toolbox":
        return sobel_magnitude(p), sobel_magnitude(t), keep
    return highpass.high_pass(p, config.hp_filter), highpass.high_pass(t, config.hp_filter), keep


def _zero_out(x: jax.Array, keep: Optional[jax.Array]) -> jax.Array:
    return x if keep is None else jnp.where(keep, x, jnp.zeros_like(x))


def _pixel_count(fp: jax.Array, keep: Optional[jax.Array], axes) -> jax.Array:
    if keep is None:
        n = 1
        for a in axes:
            n *= fp.shape[a]
        return jnp.full(fp.shape[: fp.ndim - len(axes)], n, fp.dtype)
    return accurate_sum(keep.astype(fp.dtype), axes)


# --- per-sample scores ---------------------------------------------------------------


def band_scores(p: jax.Array, t: jax.Array, config: RSConfig) -> Tuple[jax.Array, jax.Array]:
    """Per-band and per-sample scores of ``(N, C, H, W)`` inputs: ``(N, C)`` and ``(N,)``.

    The toolbox's sample score pools every band's pixels (its definition); Zhou's
    is the mean of the band scores.
    """
    fp, ft, keep = features(p, t, config)
    fp, ft = _zero_out(fp, keep), _zero_out(ft, keep)
    count = _pixel_count(fp, keep, (-2, -1))
    has_data = count > 0
    if config.definition == "toolbox":
        sums = accurate_sums(fp * ft, fp * fp, ft * ft)
        per_band = _ratio(*sums)
        sample = _ratio(*(jnp.sum(s, axis=-1) for s in sums))
        sample = jnp.where(jnp.any(has_data, -1), sample, jnp.full_like(sample, jnp.nan))
    else:
        safe = jnp.where(has_data, count, jnp.ones_like(count))[..., None, None]
        sum_p, sum_t = accurate_sums(fp, ft)
        mp, mt = sum_p[..., None, None] / safe, sum_t[..., None, None] / safe
        dp, dt = _zero_out(fp - mp, keep), _zero_out(ft - mt, keep)  # two passes: centred
        per_band = _ratio(*accurate_sums(dp * dt, dp * dp, dt * dt))
        sample = None
    per_band = jnp.where(has_data, per_band, jnp.full_like(per_band, jnp.nan))
    if sample is None:
        sample = jnp.mean(per_band, axis=-1)
    return per_band, sample


def toolbox_map(p: jax.Array, t: jax.Array, config: RSConfig) -> jax.Array:
    """``sum_bands F G / (||F|| ||G||)`` per pixel of ``(N, C, H, W)`` inputs,
    ``(N, H - 2, W - 2)``: its sum is the sample's sCC. NaN where a band's pixel
    is left out (``ignore_nans``)."""
    fp, ft, keep = features(p, t, config)
    fp, ft = _zero_out(fp, keep), _zero_out(ft, keep)
    norm_p, norm_t = (jnp.sum(n, -1)[:, None, None] for n in accurate_sums(fp * fp, ft * ft))
    m = _ratio(jnp.sum(fp * ft, axis=1), norm_p, norm_t)
    if keep is not None:
        m = jnp.where(jnp.all(keep, axis=1), m, jnp.full_like(m, jnp.nan))
    return m


@functools.partial(jax.jit, static_argnames=("config", "data_format", "reduction", "per_band"))
def _scores(preds, target, config: RSConfig, data_format: str, reduction: str, per_band: bool):
    p, t = _checked(preds, target, config, data_format)
    per_band_scores, sample = band_scores(p, t, config)
    out = per_band_scores if per_band else sample
    if reduction == "none":
        return out
    return jnp.mean(out, axis=0)


@functools.partial(jax.jit, static_argnames=("config", "data_format"))
def _toolbox_map(preds, target, config: RSConfig, data_format: str):
    return toolbox_map(*_checked(preds, target, config, data_format), config)


def _arrays(preds: ArrayLike, target: ArrayLike):
    p, t = checks.as_real_array(preds, "preds"), checks.as_real_array(target, "target")
    dtype = jnp.promote_types(checks.compute_dtype(p.dtype), checks.compute_dtype(t.dtype))
    return p.astype(dtype), t.astype(dtype)


def _check_per_band(per_band: Any) -> bool:
    if not isinstance(per_band, bool):
        raise TypeError(f"`per_band` must be a Python bool, got {per_band!r} of type {type(per_band).__name__}.")
    return per_band


# --- the public functions ------------------------------------------------------------


def pansharpening_scc(
    preds: ArrayLike,
    target: ArrayLike,
    reduction: Optional[str] = "mean",
    *,
    per_band: bool = False,
    data_format: str = "NCHW",
    ignore_nans: bool = False,
) -> jax.Array:
    """The pansharpening toolbox's spatial correlation coefficient (sCC).

    Per band, the image is cropped by one pixel on every side and its Sobel
    gradient magnitude ``F = sqrt(gy**2 + gx**2)`` is taken (MATLAB
    ``imfilter(x, fspecial('sobel'))`` and its transpose: correlation, zero
    padding, output of the cropped size). The score of a sample is the
    uncentred normalised inner product over all its pixels and bands::

        sCC = sum F_pred F_target / (sqrt(sum F_pred**2) sqrt(sum F_target**2))

    as in ``SCC.m`` of Vivone et al.'s toolbox (1 is ideal). A band's score is the
    same ratio over that band alone. 0 where a denominator is 0 (no edges).

    Args:
      preds: fused (pansharpened) images, ``(N, C, H, W)`` / ``(N, H, W)`` for
        ``"NCHW"`` or ``(N, H, W, C)`` / ``(N, H, W)`` for ``"NHWC"``, at least
        3x3. Any real dtype.
      target: reference images, same shape as ``preds``.
      reduction: ``"mean"``: the mean over samples; ``"none"`` or ``None``: one
        value per sample.
      per_band: if True, one score per band (channel): shape ``(C,)`` for
        ``"mean"``, ``(N, C)`` for ``"none"``.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: if True, a pixel whose 3x3 Sobel footprint (within the cropped
        band) holds a NaN of ``preds`` or ``target`` in that band is left out of
        the sums; a band with no pixel left scores NaN.

    Returns:
      A scalar, ``(N,)``, ``(C,)`` or ``(N, C)``; float32, or float64 for
      float64 input. NaN or Inf in a sample (unless ``ignore_nans``) makes its
      score NaN.

    Raises:
      TypeError: an input is not a real array, or a flag not a bool.
      ValueError: mismatched shapes, a rank other than 3 or 4, images smaller
        than 3x3, or an invalid ``reduction`` or ``data_format``.

    Example:
      >>> import numpy as np
      >>> from jax_scc import pansharpening_scc
      >>> x = np.random.default_rng(0).random((2, 4, 16, 16), dtype=np.float32)
      >>> float(pansharpening_scc(x, x))
      1.0
      >>> pansharpening_scc(x, x[::-1], reduction="none", per_band=True).shape
      (2, 4)
    """
    config = make_rs_config("toolbox", None, ignore_nans)
    return _scores(*_arrays(preds, target), config, data_format, check_reduction(reduction), _check_per_band(per_band))


def pansharpening_scc_map(
    preds: ArrayLike,
    target: ArrayLike,
    *,
    data_format: str = "NCHW",
    ignore_nans: bool = False,
) -> jax.Array:
    """Where the toolbox sCC comes from: ``sum_bands F_pred F_target`` per pixel,
    normalised by ``sqrt(sum F_pred**2) sqrt(sum F_target**2)`` over the sample.

    The map of a sample sums to its :func:`pansharpening_scc`. (The toolbox's
    ``SCC.m`` divides its map by the target's norm twice; its map is this one
    times ``||F_pred|| / ||F_target||``.)

    Args:
      preds: as in :func:`pansharpening_scc`.
      target: same shape as ``preds``.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: as in :func:`pansharpening_scc`; the map is NaN where a band's
        pixel is left out.

    Returns:
      ``(N, H - 2, W - 2)`` (the cropped bands), float32 or float64.

    Example:
      >>> import numpy as np
      >>> from jax_scc import pansharpening_scc_map
      >>> x = np.random.default_rng(0).random((2, 4, 16, 16), dtype=np.float32)
      >>> m = pansharpening_scc_map(x, x)
      >>> m.shape, round(float(m[0].sum()), 5)
      ((2, 14, 14), 1.0)
    """
    config = make_rs_config("toolbox", None, ignore_nans)
    return _toolbox_map(*_arrays(preds, target), config, data_format)


def global_scc(
    preds: ArrayLike,
    target: ArrayLike,
    hp_filter: Optional[ArrayLike] = None,
    reduction: Optional[str] = "mean",
    *,
    per_band: bool = False,
    data_format: str = "NCHW",
    ignore_nans: bool = False,
) -> jax.Array:
    """Zhou et al.'s global spatial correlation coefficient.

    Both images are high-passed band by band (``2 * conv2d`` with
    ``hp_filter`` over the symmetric-reflect padded band, as in
    :func:`~jax_scc.spatial_correlation_coefficient`; the default 3x3 Laplacian
    ``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]`` is Zhou's mask), and the band's
    score is the centred (Pearson) correlation coefficient of the two high-passed
    bands over all their pixels. A sample's score is the mean over its bands.
    0 where a band has no high-pass variance.

    Args:
      preds: predicted images, ``(N, C, H, W)`` / ``(N, H, W)`` for ``"NCHW"``
        or ``(N, H, W, C)`` / ``(N, H, W)`` for ``"NHWC"``. Any real dtype.
      target: reference images, same shape as ``preds``.
      hp_filter: 2-D real high-pass filter (static); default: 3x3 Laplacian.
      reduction: ``"mean"``: the mean over samples; ``"none"`` or ``None``: one
        value per sample.
      per_band: if True, one score per band: ``(C,)`` for ``"mean"``, ``(N, C)``
        for ``"none"``.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: if True, a high-passed pixel whose filter footprint holds a
        NaN of ``preds`` or ``target`` in that band is left out.

    Returns:
      A scalar, ``(N,)``, ``(C,)`` or ``(N, C)``; float32, or float64 for
      float64 input.

    Raises:
      TypeError: an input is not a real array, or a flag not a bool.
      ValueError: mismatched shapes, a rank other than 3 or 4, or an invalid
        ``hp_filter``, ``reduction`` or ``data_format``.

    Example:
      >>> import numpy as np
      >>> from jax_scc import global_scc
      >>> x = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)
      >>> float(global_scc(x, x)), float(global_scc(x, -x))
      (1.0, -1.0)
      >>> global_scc(x, x, per_band=True).shape
      (3,)
    """
    config = make_rs_config("zhou", hp_filter, ignore_nans)
    return _scores(*_arrays(preds, target), config, data_format, check_reduction(reduction), _check_per_band(per_band))


def sample_scores(preds: jax.Array, target: jax.Array, config: RSConfig, data_format: str = "NCHW") -> jax.Array:
    """Checked per-sample scores ``(N,)`` (traceable; for the command line)."""
    return band_scores(*_checked(preds, target, config, data_format), config)[1]
