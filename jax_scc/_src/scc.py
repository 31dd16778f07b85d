"""The Spatial Correlation Coefficient: per-pixel map, per-sample and batch scores.

Conventions (stated once, here):

* ``data_format="NCHW"`` takes ``(N, C, H, W)`` or ``(N, H, W)``;
  ``data_format="NHWC"`` takes ``(N, H, W, C)`` or ``(N, H, W)``.
* Integer, boolean, float16 and bfloat16 inputs are computed in float32;
  float32 stays float32; float64 stays float64 (with ``jax_enable_x64`` on).
* ``hp_filter``, ``window_size``, ``reduction`` and ``data_format`` are static
  configuration: they are validated in Python and each distinct value compiles
  once. Calling again with the same shapes does not retrace.
* A NaN or Inf in a sample makes that sample's score NaN (and the map NaN in the
  windows that see it); other samples in the batch are unaffected.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from jax_scc._src import nan_handling, validation
from jax_scc._src.fusion import materialise
from jax_scc._src.highpass import high_pass
from jax_scc._src.layout import from_nchw as _from_nchw
from jax_scc._src.layout import to_nchw as _to_nchw
from jax_scc._src.validation import Config
from jax_scc._src.windows import local_moments, window_padding


def _safe_sqrt(v: jax.Array) -> jax.Array:
    """sqrt that is only evaluated (and differentiated) away from 0."""
    return jnp.sqrt(jnp.where(v > 0, v, jnp.ones_like(v)))


def scc_from_moments(var_p: jax.Array, var_t: jax.Array, cov: jax.Array) -> jax.Array:
    """``cov / (sqrt(var_t) * sqrt(var_p))`` with variances clipped at 0, and 0 where
    that denominator is 0.

    The variances are masked *before* the square root and the division so that
    gradients stay finite where a window's variance is exactly 0. NaN inputs
    propagate (a NaN variance is not "zero").
    """
    var_p = jnp.maximum(var_p, 0)
    var_t = jnp.maximum(var_t, 0)
    den = _safe_sqrt(var_t) * _safe_sqrt(var_p)
    zero = (var_p == 0) | (var_t == 0) | (den == 0)
    den = jnp.where(zero, jnp.ones_like(den), den)
    return jnp.where(zero, jnp.zeros_like(cov), cov / den)


def _scc_map_nchw(preds: jax.Array, target: jax.Array, config: Config) -> jax.Array:
    """The SCC map of ``(..., H, W)`` images (all leading axes are batch-like)."""
    hp_p = high_pass(preds, config.hp_filter)
    hp_t = high_pass(target, config.hp_filter)
    barriers = config.method == "slices" and _on_cpu()
    if barriers:
        hp_p, hp_t = materialise((hp_p, hp_t))  # computed once, not per window tap
    var_p, var_t, cov = local_moments(
        hp_p, hp_t, config.window_size, config.method, barriers=barriers
    )
    return scc_from_moments(var_p, var_t, cov)


def _mean_per_sample(m: jax.Array) -> jax.Array:
    """Mean over every axis but the first, one axis at a time.

    Reducing axis by axis keeps float32 partial sums short (H, W and C terms
    instead of H*W*C), which matters for the 1e-6 accuracy of the score.
    """
    for _ in range(m.ndim - 1):
        m = jnp.mean(m, axis=-1)
    return m


# The slice path walks the batch in chunks of about this many pixels, so that
# the intermediates of one chunk stay in cache instead of spilling to memory.
_CHUNK_PIXELS = 1 << 18


class _Plan(NamedTuple):
    """How the slice path walks a batch: ``steps`` chunks of ``samples`` whole
    samples each, or (``samples == 0``) one image plane per step."""

    steps: int
    samples: int


def _on_cpu() -> bool:
    """Whether the computation being traced targets XLA's CPU backend.

    The chunk loop and the fusion barriers help XLA's CPU code generator; on
    GPU/TPU a sequential loop would idle the device and every conditional
    would synchronise with the host, so there the whole batch is one graph.
    """
    return jax.default_backend() == "cpu"


def _plan(shape: Tuple[int, ...]) -> _Plan:
    """Chunking of an ``(N, C, H, W)`` batch (one step, no loop, off CPU)."""
    n, c = shape[0], shape[1]
    if not _on_cpu():
        return _Plan(steps=1, samples=n)
    per_sample = math.prod(shape[1:])
    if per_sample > _CHUNK_PIXELS:
        return _Plan(steps=n * c, samples=0)
    fits = [d for d in range(1, n + 1) if n % d == 0 and d * per_sample <= _CHUNK_PIXELS]
    samples = max(fits, default=1)
    return _Plan(steps=n // samples, samples=samples)


# A plane larger than a chunk is walked in bands of rows (a divisor of H) of
# at least this many rows; planes whose height has no such divisor go whole.
_MIN_BAND_ROWS = 32


def _band_rows(h: int, w_img: int, window: int) -> int:
    """Rows per band for an ``h x w_img`` plane; ``h`` means no bands."""
    per_band = _CHUNK_PIXELS // w_img
    if per_band >= h:
        return h
    low = max(window, _MIN_BAND_ROWS)
    fits = [r for r in range(low, per_band + 1) if h % r == 0]
    return max(fits) if fits else h


def _walk_bands(p: jax.Array, t: jax.Array, config: Config, rows: int, emit, init):
    """Computes the map of ``(1, 1, H, W)`` planes band by band.

    The high-pass is computed once for the whole plane and zero padded by the
    window's rows; each band then reads its rows plus the ``w - 1`` halo rows
    and runs the window passes on them alone, so that its intermediates stay
    in cache. ``emit(carry, j, band_map)`` folds band ``j``'s map into ``carry``.
    """
    w = config.window_size
    hp_p, hp_t = materialise((high_pass(p, config.hp_filter), high_pass(t, config.hp_filter)))
    pad = [(0, 0)] * (p.ndim - 2) + [window_padding(w), (0, 0)]
    hp_p, hp_t = jnp.pad(hp_p, pad), jnp.pad(hp_t, pad)

    def body(j, carry):
        start = j * rows
        bp = lax.dynamic_slice_in_dim(hp_p, start, rows + w - 1, axis=p.ndim - 2)
        bt = lax.dynamic_slice_in_dim(hp_t, start, rows + w - 1, axis=p.ndim - 2)
        moments = local_moments(bp, bt, w, config.method, barriers=True, halo_rows=True)
        return emit(carry, j, scc_from_moments(*moments))

    return lax.fori_loop(0, p.shape[-2] // rows, body, init)


def _plane_map(p: jax.Array, t: jax.Array, config: Config) -> jax.Array:
    """The map of one ``(1, 1, H, W)`` plane, in bands when it is large."""
    h, w_img = p.shape[-2:]
    rows = _band_rows(h, w_img, config.window_size)
    if rows == h:
        return _scc_map_nchw(p, t, config)

    def emit(out, j, band):
        return lax.dynamic_update_slice_in_dim(out, band, j * rows, axis=p.ndim - 2)

    return _walk_bands(p, t, config, rows, emit, jnp.zeros_like(p))


def _plane_mean(p: jax.Array, t: jax.Array, config: Config) -> jax.Array:
    """The mean map value of one ``(1, 1, H, W)`` plane, a scalar."""
    h, w_img = p.shape[-2:]
    rows = _band_rows(h, w_img, config.window_size)
    if rows == h:
        return _mean_per_sample(_scc_map_nchw(p, t, config))[0]

    def emit(total, j, band):
        return total + jnp.sum(jnp.mean(band, axis=-1))  # sum of row means

    zero = jnp.zeros((), p.dtype)
    return _walk_bands(p, t, config, rows, emit, zero) / jnp.asarray(h, p.dtype)


def _as_4d(x: jax.Array, data_format: str) -> Tuple[jax.Array, str]:
    """``(N, H, W)`` as ``(N, 1, H, W)``; 4-D unchanged. Returns the layout too."""
    if x.ndim == 3:
        return x[:, None], "NCHW"
    return x, data_format


def _chunk_index(x: jax.Array, plan: _Plan, i: jax.Array, data_format: str):
    """Start indices and sizes of chunk ``i`` of the 4-D ``x`` in its own layout."""
    start = [0] * x.ndim
    if plan.samples:
        start[0] = i * plan.samples
        return start, (plan.samples,) + x.shape[1:]
    c_axis = 1 if data_format == "NCHW" else 3
    c = x.shape[c_axis]
    start[0], start[c_axis] = i // c, i % c
    size = list(x.shape)
    size[0] = size[c_axis] = 1
    return start, tuple(size)


def _chunks(preds: jax.Array, target: jax.Array, plan: _Plan, fmt: str, i):
    """Chunk ``i`` of both 4-D inputs in NCHW, with its start indices in ``fmt``."""
    start, size = _chunk_index(preds, plan, i, fmt)
    p = _to_nchw(lax.dynamic_slice(preds, start, size), fmt)
    t = _to_nchw(lax.dynamic_slice(target, start, size), fmt)
    return start, p, t


def _chunked_map(preds: jax.Array, target: jax.Array, config: Config) -> jax.Array:
    """The SCC map computed chunk by chunk (slice path)."""
    rank = preds.ndim
    preds, fmt = _as_4d(preds, config.data_format)
    target, _ = _as_4d(target, config.data_format)
    plan = _plan(_to_nchw(preds, fmt).shape)
    if plan.samples and plan.steps == 1:
        out = _from_nchw(_scc_map_nchw(_to_nchw(preds, fmt), _to_nchw(target, fmt), config), fmt)
    else:

        def body(i, out):
            start, p, t = _chunks(preds, target, plan, fmt, i)
            m = _scc_map_nchw(p, t, config) if plan.samples else _plane_map(p, t, config)
            return lax.dynamic_update_slice(out, _from_nchw(m, fmt), start)

        out = lax.fori_loop(0, plan.steps, body, jnp.zeros_like(preds))
    return out[:, 0] if rank == 3 else out


def _chunked_per_sample(preds: jax.Array, target: jax.Array, config: Config) -> jax.Array:
    """Per-sample scores computed chunk by chunk (slice path)."""
    preds, fmt = _as_4d(preds, config.data_format)
    target, _ = _as_4d(target, config.data_format)
    n, c = _to_nchw(preds, fmt).shape[:2]
    plan = _plan(_to_nchw(preds, fmt).shape)
    if plan.samples and plan.steps == 1:
        return _mean_per_sample(_scc_map_nchw(_to_nchw(preds, fmt), _to_nchw(target, fmt), config))

    def body(i, acc):
        start, p, t = _chunks(preds, target, plan, fmt, i)
        if plan.samples:
            scores = _mean_per_sample(_scc_map_nchw(p, t, config))
            return lax.dynamic_update_slice(acc, scores, (start[0],))
        return acc.at[start[0]].add(_plane_mean(p, t, config))  # one channel's mean

    out = lax.fori_loop(0, plan.steps, body, jnp.zeros((n,), preds.dtype))
    if plan.samples:
        return out
    return out / jnp.asarray(c, preds.dtype)


@functools.partial(jax.jit, static_argnames=("config",))
def _scc_map_impl(preds: jax.Array, target: jax.Array, config: Config) -> jax.Array:
    if config.method == "slices":
        return _chunked_map(preds, target, config)
    m = _scc_map_nchw(
        _to_nchw(preds, config.data_format), _to_nchw(target, config.data_format), config
    )
    return _from_nchw(m, config.data_format)


@functools.partial(jax.jit, static_argnames=("config",))
def _per_sample_impl(preds: jax.Array, target: jax.Array, config: Config) -> jax.Array:
    if config.method == "slices":
        return _chunked_per_sample(preds, target, config)
    m = _scc_map_nchw(
        _to_nchw(preds, config.data_format), _to_nchw(target, config.data_format), config
    )
    return _mean_per_sample(m)


def per_sample_scores(
    preds: Any,
    target: Any,
    config: Config,
    name_p: str = "preds",
    name_t: str = "target",
    ignore_nans: bool = False,
) -> jax.Array:
    """Validated per-sample SCC scores, shape ``(N,)``. Used by the metric state too."""
    ignore_nans = validation.check_ignore_nans(ignore_nans)
    preds, target = validation.check_images(preds, target, config, name_p, name_t)
    if ignore_nans:
        return nan_handling.per_sample_ignoring_nans(preds, target, config, _scc_map_nchw)
    return _per_sample_impl(preds, target, config)


def scc_map(
    preds: Any,
    target: Any,
    hp_filter: Optional[Any] = None,
    window_size: int = 8,
    data_format: str = "NCHW",
    *,
    ignore_nans: bool = False,
    method: str = "auto",
) -> jax.Array:
    """Per-pixel Spatial Correlation Coefficient map.

    For each channel, both images are high-passed
    (``hp(x) = 2 * conv2d(x, hp_filter)``, a true convolution over a
    symmetric-reflect padded input), and the local correlation of the two
    high-passed images is taken over a uniform ``window_size x window_size``
    window (zero padded). Its mean is :func:`spatial_correlation_coefficient`.

    Args:
      preds: predicted images, ``(N, C, H, W)`` / ``(N, H, W)`` for ``"NCHW"``
        or ``(N, H, W, C)`` / ``(N, H, W)`` for ``"NHWC"``. Any real dtype.
      target: ground-truth images, same shape as ``preds``.
      hp_filter: 2-D real high-pass filter (array-like, any size, static).
        Defaults to ``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]``.
      window_size: side of the uniform local window, ``1 <= window_size <= min(H, W)``.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: if True, NaN input pixels are missing data: the map is NaN
        exactly at the pixels whose footprint (filter support, then window)
        holds a NaN in ``preds`` or ``target`` of that channel, and gradients
        stay finite. Inf is not treated as missing.
      method: how the windows are computed (static): ``"slices"`` (shifted
        slices; on CPU walked over the batch in cache-sized chunks), ``"conv"``
        (depthwise ``lax.conv`` with dilated 2-tap kernels) or ``"auto"``
        (``"slices"`` on CPU and GPU, where it measured fastest; ``"conv"`` on
        TPU). Both give the same numbers to float32 rounding.

    Returns:
      The SCC map with the shape of ``preds``; float32, or float64 for float64 input.

    Raises:
      TypeError: if an input is not a real array, or ``ignore_nans`` not a bool.
      ValueError: on mismatched shapes, a rank other than 3 or 4, an invalid
        ``window_size``, ``data_format``, ``hp_filter`` or ``method``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jax_scc import scc_map
      >>> x = jnp.arange(2 * 16 * 16, dtype=jnp.float32).reshape(2, 16, 16) % 7
      >>> scc_map(x, x, window_size=4).shape
      (2, 16, 16)
      >>> m = scc_map(x.at[0, 0, 0].set(jnp.nan), x, window_size=4, ignore_nans=True)
      >>> int(jnp.isnan(m).sum())  # pixels whose filter-then-window footprint sees it
      16
    """
    config = validation.make_config(hp_filter, window_size, data_format, method)
    ignore_nans = validation.check_ignore_nans(ignore_nans)
    preds, target = validation.check_images(preds, target, config)
    if ignore_nans:
        return nan_handling.scc_map_ignoring_nans(preds, target, config, _scc_map_nchw)
    return _scc_map_impl(preds, target, config)


def spatial_correlation_coefficient(
    preds: Any,
    target: Any,
    hp_filter: Optional[Any] = None,
    window_size: int = 8,
    reduction: Optional[str] = "mean",
    data_format: str = "NCHW",
    *,
    ignore_nans: bool = False,
    method: str = "auto",
) -> jax.Array:
    """Spatial Correlation Coefficient (SCC) between two image batches.

    The mean over pixels and channels of :func:`scc_map`: 1 for identical images
    with structure, around 0 for unrelated ones, and -1 for inverted structure.
    Semantics follow torchmetrics 1.9 ``spatial_correlation_coefficient``
    (derived from sewar's ``scc``), with float32 results that match the float64
    evaluation of the same definition to ~1e-6.

    Args:
      preds: predicted images, ``(N, C, H, W)`` / ``(N, H, W)`` for ``"NCHW"``
        or ``(N, H, W, C)`` / ``(N, H, W)`` for ``"NHWC"``. Any real dtype.
      target: ground-truth images, same shape as ``preds``.
      hp_filter: 2-D real high-pass filter (array-like, any size, static).
        Defaults to ``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]``.
      window_size: side of the uniform local window, ``1 <= window_size <= min(H, W)``.
      reduction: ``"mean"`` for one scalar over the batch; ``"none"`` or ``None``
        for one score per sample.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: if True, NaN input pixels are missing data: map pixels whose
        footprint (filter support, then window) holds a NaN are left out of the
        mean over pixels and channels, gradients stay finite, and a sample with
        no valid map pixel scores NaN. Inf is not treated as missing.
      method: how the windows are computed (static): ``"slices"`` (shifted
        slices; on CPU walked over the batch in cache-sized chunks), ``"conv"``
        (depthwise ``lax.conv`` with dilated 2-tap kernels) or ``"auto"``
        (``"slices"`` on CPU and GPU, where it measured fastest; ``"conv"`` on
        TPU). Both give the same numbers to float32 rounding.

    Returns:
      A scalar (``reduction="mean"``) or an ``(N,)`` array; float32, or float64
      for float64 input. A sample holding NaN (unless ``ignore_nans``) or Inf
      scores NaN.

    Raises:
      TypeError: if an input is not a real array, or ``ignore_nans`` not a bool.
      ValueError: on mismatched shapes, a rank other than 3 or 4, an invalid
        ``window_size``, ``reduction``, ``data_format``, ``hp_filter`` or
        ``method``.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from jax_scc import spatial_correlation_coefficient as scc
      >>> x = jax.random.uniform(jax.random.key(0), (4, 3, 32, 32))
      >>> float(scc(x, x))
      1.0
      >>> scc(x, x, reduction="none").shape
      (4,)
      >>> hole = x.at[0, :, :8, :8].set(jnp.nan)  # no-data pixels in sample 0
      >>> float(scc(hole, x, ignore_nans=True))
      1.0
    """
    config = validation.make_config(hp_filter, window_size, data_format, method)
    reduction = validation.check_reduction(reduction)
    per_sample = per_sample_scores(preds, target, config, ignore_nans=ignore_nans)
    if reduction == "mean":
        return jnp.mean(per_sample)
    return per_sample
