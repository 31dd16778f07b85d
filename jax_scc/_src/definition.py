"""The definition of SCC, as pure math on bands of image rows.

Per channel, both images are high-passed (:mod:`~jax_scc._src.highpass`:
``2 * conv2d`` over the symmetric-reflect padded image); the local moments of
the two high-passed images are taken over ``w x w`` windows with zero padding
(:mod:`~jax_scc._src.moments`); and the map is their correlation::

    scc = cov / (sqrt(var_t) * sqrt(var_p)),   0 where that denominator is 0.

A sample's score is the mean of its map over pixels and channels. Options
leave map pixels out of that mean (:class:`MapPixels` ``keep``):
``ignore_nans`` those whose footprint (filter support, then window) holds a
NaN input pixel, ``ignore_flat`` those whose target window is flat.

Everything here works on a *band*: rows ``[r0, r0 + r)`` of ``(..., H, W)``
planes, given with the halo rows the two stages need (:class:`Band`). A whole
plane is the band ``[0, H)`` (:func:`whole_planes`); the CPU execution
strategy walks large planes band by band. Nothing here asks which backend it
runs on.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from jax_scc._src import highpass, moments
from jax_scc._src.config import Config
from jax_scc._src.highpass import hp_padding, reflect_pad, reflect_pad_transpose
from jax_scc._src.moments import Moments, window_padding

def scc_from_moments(m: Moments) -> jax.Array:
    """``cov / (sqrt(var_t) * sqrt(var_p))`` with variances clipped at 0, and 0
    where that denominator is 0.

    The variances are masked *before* the square root and the division, so that
    gradients stay finite where a window's variance is exactly 0. NaN inputs
    propagate (a NaN variance is not "zero").
    """
    var_p = jnp.maximum(m.vp, 0)
    var_t = jnp.maximum(m.vt, 0)
    one = jnp.ones_like(var_p)
    den = jnp.sqrt(jnp.where(var_t > 0, var_t, one)) * jnp.sqrt(jnp.where(var_p > 0, var_p, one))
    zero = (var_p == 0) | (var_t == 0) | (den == 0)
    den = jnp.where(zero, one, den)
    return jnp.where(zero, jnp.zeros_like(m.cov), m.cov / den)


def halo(config: Config) -> Tuple[int, int]:
    """Input rows a band needs before and after its own: the filter's
    symmetric-reflect padding plus the window's zero padding."""
    hp_top, hp_bottom = hp_padding(len(config.hp_filter))
    win_top, win_bottom = window_padding(config.window_size)
    return hp_top + win_top, hp_bottom + win_bottom


# Zero padding of the last two axes: ((before, after) rows, (before, after) columns).
Padding = Tuple[Tuple[int, int], Tuple[int, int]]


def pad_spatial(x: jax.Array, rows: Tuple[int, int], cols: Tuple[int, int]) -> jax.Array:
    """``x`` with its last two axes zero padded: ``rows`` and ``cols`` as ``(before, after)``."""
    return jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [rows, cols])


def inline(fn, *args):
    """The default ``stage`` of :func:`band_gradient`: ``fn(*args)``, as is."""
    return fn(*args)


class Band(NamedTuple):
    """Rows ``[r0, r0 + r)`` of ``(..., H, W)`` planes, ready for the two stages.

    Attributes:
      preds, target: input rows ``r0 - before ... r0 + r + after - 1`` (see
        :func:`halo`), shape ``(..., r + before + after, W)``. Rows outside the
        image hold the symmetric reflection where the filter reads them; rows
        that only the window's zero padding covers may hold anything.
      inside: bool ``(r + w - 1, 1)``: which high-passed rows
        (``r0 - ceil((w-1)/2) ... r0 + r + floor((w-1)/2) - 1``) lie in the image;
        or, for images with their own extents (``config.extents``), bool
        ``(S, 1, r + w - 1, W)``: which high-passed pixels of each of the
        band's ``S`` samples lie in that sample's image (:func:`inside_rows`).
      sigma_p, sigma_t: :func:`~jax_scc._src.highpass.grid_scale` of the
        whole planes, shape ``(..., 1, 1)``, or ``None``.
    """

    preds: jax.Array
    target: jax.Array
    inside: jax.Array
    sigma_p: Optional[jax.Array]
    sigma_t: Optional[jax.Array]


class MapPixels(NamedTuple):
    """A band of the SCC map, and which of its pixels count (``None``: all)."""

    map: jax.Array
    keep: Optional[jax.Array]


def _dilate(mask: jax.Array, kh: int, kw: int) -> jax.Array:
    """Logical OR over ``kh x kw`` windows of a padded mask ("valid" output)."""
    if kh == 1 and kw == 1:
        return mask
    dims = (1,) * (mask.ndim - 2) + (kh, kw)
    return lax.reduce_window(mask, False, lax.bitwise_or, dims, (1,) * mask.ndim, "VALID")


def _missing_footprint(missing: jax.Array, inside: jax.Array, config: Config) -> jax.Array:
    """Map pixels whose footprint holds a missing input pixel (``ignore_nans``).

    The footprint of a map pixel is every high-pass output in its ``w x w``
    window (zero padding holds no data, so it is never missing), and the
    footprint of a high-pass output is the full ``kh x kw`` filter support on
    the symmetric-reflect padded input: a missing pixel near a border is seen
    again through its reflection.
    """
    kh, kw = len(config.hp_filter), len(config.hp_filter[0])
    w = config.window_size
    missing = reflect_pad(missing, *hp_padding(kw), axis=missing.ndim - 1)
    missing = _dilate(missing, kh, kw) & inside
    missing = jnp.pad(missing, [(0, 0)] * (missing.ndim - 1) + [window_padding(w)])
    return _dilate(missing, w, w)


def _high_passed(
    x: jax.Array, hp_filter: highpass.Filter, sigma: Optional[jax.Array], inside: jax.Array
) -> jax.Array:
    """The band's high-passed rows, 0 outside the image (the window's zero padding).

    ``sigma`` is the exact split's grid (``None``: the plain tap sum, which is
    also the high-pass's derivative).
    """
    hp = highpass.high_pass_valid(highpass.pad_for_high_pass(x, hp_filter, rows=False), hp_filter, sigma)
    return jnp.where(inside, hp, jnp.zeros_like(hp))


class Tangents(NamedTuple):
    """Tangents of a band's ``preds`` and ``target`` rows (``None``: zero)."""

    preds: Optional[jax.Array]
    target: Optional[jax.Array]


class HighPassed(NamedTuple):
    """A band after the first stage (:func:`high_pass`).

    Attributes:
      preds, target: the high-passed rows ``r0 - ceil((w-1)/2) ...
        r0 + r + floor((w-1)/2) - 1``, 0 outside the image, ``(..., r + w - 1, W)``.
      d_preds, d_target: their tangents (``None``: zero).
      missing: which input rows' pixels are missing (``ignore_nans``), or ``None``.
      inside: the band's ``inside`` (:class:`Band`).
    """

    preds: jax.Array
    target: jax.Array
    d_preds: Optional[jax.Array]
    d_target: Optional[jax.Array]
    missing: Optional[jax.Array]
    inside: jax.Array


def high_pass(band: Band, config: Config, tangents: Optional[Tangents] = None) -> HighPassed:
    """The first stage: the band's high-passed rows (and their tangents)."""
    p, t = band.preds, band.target
    inside = band.inside.reshape((1,) * (p.ndim - band.inside.ndim) + band.inside.shape)
    dp, dt = tangents if tangents is not None else (None, None)
    missing = None
    if config.ignore_nans:
        # Missing data is read as 0 (jnp.where keeps the gradient there exactly
        # 0 instead of NaN) and its footprint is left out in the second stage.
        missing = jnp.isnan(p) | jnp.isnan(t)
        p, t, dp, dt = (None if x is None else jnp.where(missing, jnp.zeros_like(x), x) for x in (p, t, dp, dt))
    hp_filter = highpass.normalised(config.hp_filter)
    return HighPassed(
        _high_passed(p, hp_filter, band.sigma_p, inside),
        _high_passed(t, hp_filter, band.sigma_t, inside),
        *(None if x is None else _high_passed(x, hp_filter, None, inside) for x in (dp, dt)),
        missing,
        inside,
    )


def padded_rows(hp: HighPassed, pad: Padding) -> HighPassed:
    """``hp`` with its high-passed rows zero padded by ``pad``: held with the
    padding the next passes read, instead of each making a padded copy."""
    return hp._replace(preds=pad_spatial(hp.preds, *pad), target=pad_spatial(hp.target, *pad))


def _map_pixels(hp: HighPassed, mom: Moments, config: Config) -> MapPixels:
    """The SCC map of a high-passed band from its windowed moments, and which
    of its pixels count."""
    scc = scc_from_moments(mom)
    keep = None
    if hp.missing is not None:
        keep = ~_missing_footprint(hp.missing, hp.inside, config)
    if config.ignore_flat:
        # A flat target window scores 0 whatever the prediction: leaving it out
        # hides no penalty. (A NaN variance is kept, so that NaN propagates.)
        structured = ~(jnp.maximum(mom.vt, 0) == 0)
        keep = structured if keep is None else keep & structured
    if config.extents:
        # Map pixels outside a sample's own image are not counted.
        top = window_padding(config.window_size)[0]
        own = lax.slice_in_dim(hp.inside, top, top + scc.shape[-2], axis=scc.ndim - 2)
        own = jnp.broadcast_to(own, scc.shape)
        keep = own if keep is None else keep & own
    return MapPixels(scc, keep)


def window_map(hp: HighPassed, config: Config, pairing: str = "slices") -> Tuple[MapPixels, Optional[jax.Array]]:
    """The second stage: the SCC map of a high-passed band from its windowed
    moments, which of its pixels count, and its tangent (``None`` without
    tangents in ``hp``)."""
    with_tangents = hp.d_preds is not None or hp.d_target is not None
    mom = moments.local_moments(
        hp.preds,
        hp.target,
        config.window_size,
        tangents=(hp.d_preds, hp.d_target) if with_tangents else None,
        pairing=pairing,
        rows_padded=True,
    )
    mom, d_mom = mom if with_tangents else (mom, None)
    pixels = _map_pixels(hp, mom, config)
    d_scc = None if d_mom is None else scc_tangent(mom, d_mom, pixels.map)
    return pixels, d_scc


def band_map(
    band: Band,
    config: Config,
    *,
    tangents: Optional[Tangents] = None,
    pairing: str = "slices",
) -> Tuple[MapPixels, Optional[jax.Array]]:
    """The SCC map of a band, which of its pixels count, and its tangent:
    :func:`window_map` of :func:`high_pass`.

    Args:
      band: the band's input rows with their halo (:class:`Band`).
      config: the configuration (filter, window, ``ignore_nans``, ``ignore_flat``).
      tangents: tangents of the band's input rows, for the map's derivative
        (forward mode; JAX transposes it for reverse mode); ``None`` for none.
      pairing: how the window moments form their pairs (``"slices"``,
        ``"conv"`` or ``"direct"``; see :func:`~jax_scc._src.moments.local_moments`).

    Returns:
      :class:`MapPixels` of shape ``(..., r, W)``, and the tangent of the map
      (``None`` without ``tangents``).
    """
    return window_map(high_pass(band, config, tangents), config, pairing)


def scc_tangent(mom: Moments, d_mom: Moments, scc: jax.Array) -> jax.Array:
    """The tangent of ``scc = cov / sqrt(vp * vt)`` given the moments' tangents::

        d scc = d cov / sqrt(vp vt) - scc / 2 * (d vp / vp + d vt / vt)

    Windows whose denominator is 0 (where ``scc`` is 0 by definition) have a
    zero tangent, so gradients stay finite there (exactly 0 where every window
    of a pixel is flat). ``None`` tangents are zeros. Linear in ``d_mom``.
    """
    vp, vt = jnp.maximum(mom.vp, 0), jnp.maximum(mom.vt, 0)
    ok = (vp > 0) & (vt > 0)
    one = jnp.ones_like(vp)
    vp, vt = jnp.where(ok, vp, one), jnp.where(ok, vt, one)
    zero = jnp.zeros_like(vp)
    terms = [
        (d_mom.cov, jnp.where(ok, 1 / (jnp.sqrt(vp) * jnp.sqrt(vt)), zero)),
        (d_mom.vp, jnp.where(ok, -0.5 * scc / vp, zero)),
        (d_mom.vt, jnp.where(ok, -0.5 * scc / vt, zero)),
    ]
    d = [coefficient * x for x, coefficient in terms if x is not None]
    return sum(d[1:], d[0]) if d else zero


def inside_rows(
    r0: Any, r: int, h: int, w: int, extents: Optional[jax.Array] = None, columns: int = 0
) -> jax.Array:
    """bool ``(r + w - 1, 1)``: high-passed rows of a band that lie in the image.

    With ``extents`` (``int32 (S, 2)``: the height and width of each of the
    band's ``S`` samples), bool ``(S, 1, r + w - 1, columns)``: the band's
    high-passed pixels that lie in each sample's own image."""
    top, _ = window_padding(w)
    rows = r0 - top + jnp.arange(r + w - 1)
    if extents is None:
        return ((rows >= 0) & (rows < h))[:, None]
    in_rows = (rows[None] >= 0) & (rows[None] < extents[:, :1])  # (S, r + w - 1)
    in_cols = jnp.arange(columns)[None] < extents[:, 1:]  # (S, columns)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def extend_rows(x: jax.Array, config: Config) -> jax.Array:
    """Whole ``(..., H, W)`` planes with the rows of a band's halo (:class:`Band`)."""
    axis = x.ndim - 2
    x = reflect_pad(x, *hp_padding(len(config.hp_filter)), axis)
    widths = [(0, 0)] * x.ndim
    widths[axis] = window_padding(config.window_size)  # read only by the window's zero rows
    return jnp.pad(x, widths)


def extend_rows_transpose(g: jax.Array, config: Config) -> jax.Array:
    """The transpose of :func:`extend_rows` (its derivative): a cotangent of a
    band's rows to one of the whole planes."""
    axis = g.ndim - 2
    top, bottom = window_padding(config.window_size)
    g = lax.slice_in_dim(g, top, g.shape[axis] - bottom, axis=axis)
    return reflect_pad_transpose(g, *hp_padding(len(config.hp_filter)), axis)


def whole_planes(p: jax.Array, t: jax.Array, config: Config, extents: Optional[jax.Array] = None) -> Band:
    """The band ``[0, H)`` of whole ``(..., H, W)`` planes (with ``extents``,
    ``(S, C, H, W)`` canvases of images of those sizes, :func:`inside_rows`)."""
    hp_filter = highpass.normalised(config.hp_filter)
    sigma_p = highpass.grid_scale(highpass.finite_peak(p), hp_filter)
    sigma_t = highpass.grid_scale(highpass.finite_peak(t), hp_filter)
    h = p.shape[-2]
    inside = inside_rows(0, h, h, config.window_size, extents, p.shape[-1])
    return Band(extend_rows(p, config), extend_rows(t, config), inside, sigma_p, sigma_t)


class RowStats(NamedTuple):
    """Per-row partial results of the mean over pixels: ``(..., H)`` each.

    Unmasked, ``total`` is each row's mean and ``count`` is ``None``; masked,
    ``total`` is the sum of the kept pixels and ``count`` their number.
    """

    total: jax.Array
    count: Optional[jax.Array]


def row_stats(pixels: MapPixels) -> RowStats:
    """Reduces a band of the map over its columns."""
    m, keep = pixels
    if keep is None:
        return RowStats(jnp.mean(m, axis=-1), None)
    total = jnp.sum(jnp.where(keep, m, jnp.zeros_like(m)), axis=-1)
    return RowStats(total, jnp.sum(keep.astype(m.dtype), axis=-1))


def scores(rows: RowStats) -> jax.Array:
    """Per-sample scores from ``(N, C, H)`` row statistics, shape ``(N,)``.

    The mean is taken one axis at a time (columns, rows, channels), which keeps
    float32 partial sums short: that matters for the 1e-6 accuracy of the score.
    A sample with no pixel kept scores NaN.
    """
    total, count = rows
    if count is None:
        return jnp.mean(jnp.mean(total, axis=-1), axis=-1)
    total = jnp.sum(jnp.sum(total, axis=-1), axis=-1)
    count = jnp.sum(jnp.sum(count, axis=-1), axis=-1)
    has_data = count > 0
    score = total / jnp.where(has_data, count, jnp.ones_like(count))
    return jnp.where(has_data, score, jnp.full_like(score, jnp.nan))


def counted_sum(pixels: MapPixels, rows: Optional[jax.Array] = None) -> jax.Array:
    """The sum of the map's counted pixels (of ``rows``, a boolean ``(r, 1)``
    mask, if given): what a sample's score is the mean of."""
    m, keep = pixels
    if rows is not None:
        keep = rows if keep is None else keep & rows
    return jnp.sum(m if keep is None else jnp.where(keep, m, jnp.zeros_like(m)))


def counted(rows: RowStats, shape) -> jax.Array:
    """How many map pixels each sample's score averages, ``(N,)``: the
    denominators of the scores (``shape`` is the batch's NCHW shape)."""
    if rows.count is None:
        n, c, h, w = shape
        return jnp.full((n,), c * h * w, rows.total.dtype)
    return jnp.sum(jnp.sum(rows.count, axis=-1), axis=-1)


def map_with_gaps(pixels: MapPixels) -> jax.Array:
    """The map, NaN at the pixels that do not count."""
    m, keep = pixels
    return m if keep is None else jnp.where(keep, m, jnp.full_like(m, jnp.nan))


# --- whole planes in few passes (the accelerators' formulation) -------------------
#
# The same definition on whole ``(..., H, W)`` planes, written so that a fusing
# compiler (XLA on GPU) makes two passes of it: the exact high-pass with a grid
# per output pixel (:func:`~jax_scc._src.highpass.high_pass_local_grid`), and
# every window from its ``w * w`` values (:func:`~jax_scc._src.moments.window_2d`)
# with the ratio and the reduction. Its derivative is written from the
# definition, centred like the forward (:func:`counted_sum_gradient`).


class Planes(NamedTuple):
    """Whole planes after both stages, ``(..., H, W)`` each.

    Attributes:
      hp_p, hp_t: the high-passed images (missing pixels read as 0).
      window: their windowed statistics, centred on each window's centre pixel.
      scc: the SCC map (0 where its denominator is 0).
      missing: which input pixels are missing (``ignore_nans``), or ``None``.
    """

    hp_p: jax.Array
    hp_t: jax.Array
    window: moments.CentredWindow
    scc: jax.Array
    missing: Optional[jax.Array]


def _plane_footprint(missing: jax.Array, config: Config) -> jax.Array:
    """Map pixels of whole planes whose footprint holds a missing input pixel."""
    kh, kw = len(config.hp_filter), len(config.hp_filter[0])
    w = config.window_size
    axes = (missing.ndim - 2, missing.ndim - 1)
    missing = reflect_pad(reflect_pad(missing, *hp_padding(kh), axes[0]), *hp_padding(kw), axes[1])
    missing = _dilate(missing, kh, kw)
    missing = jnp.pad(missing, [(0, 0)] * (missing.ndim - 2) + [window_padding(w)] * 2)
    return _dilate(missing, w, w)


def planes_map(
    p: jax.Array, t: jax.Array, config: Config, borders: str = "strips", window: str = "levels"
) -> Tuple[MapPixels, Planes]:
    """The SCC map of whole ``(..., H, W)`` planes, which pixels count, and the
    intermediate results its derivative needs (:class:`Planes`).

    The numbers of :func:`band_map` on the band ``[0, H)``, to float32
    rounding (the window statistics are formed from each window's ``w * w``
    values: :func:`~jax_scc._src.moments.window_2d`). ``borders``: how the
    high-pass reflects (:func:`~jax_scc._src.highpass.high_pass_local_grid`);
    ``window``: the form of the window pass (``"levels"`` or ``"two_pass"``)."""
    missing = None
    if config.ignore_nans:
        missing = jnp.isnan(p) | jnp.isnan(t)
        p, t = (jnp.where(missing, jnp.zeros_like(x), x) for x in (p, t))
    hp_p = highpass.high_pass_local_grid(p, config.hp_filter, borders)
    hp_t = highpass.high_pass_local_grid(t, config.hp_filter, borders)
    window = moments.window_2d(hp_p, hp_t, config.window_size, window)
    mom = window.moments(hp_p, hp_t)
    scc = scc_from_moments(mom)
    keep = None if missing is None else ~_plane_footprint(missing, config)
    if config.ignore_flat:
        structured = ~(jnp.maximum(mom.vt, 0) == 0)
        keep = structured if keep is None else keep & structured
    return MapPixels(scc, keep), Planes(hp_p, hp_t, window, scc, missing)


def _coefficients(window: moments.CentredWindow, scc: jax.Array, keep: Optional[jax.Array], n: int):
    """``(a, b_p, b_t)`` of each map pixel ``c``: with ``n = w * w`` values per window,

        d scc_c / d hp_p(q) = a_c (t_q - mt_c) - b_p,c (p_q - mp_c),
        d scc_c / d hp_t(q) = a_c (p_q - mp_c) - b_t,c (t_q - mt_c)

    for ``q`` in the window of ``c``: ``a = 1 / (n sd_p sd_t)``, ``b_p = scc / (n var_p)``.
    Zero where the map pixel does not count or its denominator is 0 (where
    ``scc`` is 0 by definition)."""
    vp, vt = jnp.maximum(window.vp, 0), jnp.maximum(window.vt, 0)
    ok = (vp > 0) & (vt > 0)
    if keep is not None:
        ok = ok & keep
    one, zero = jnp.ones_like(vp), jnp.zeros_like(vp)
    vp, vt = jnp.where(ok, vp, one), jnp.where(ok, vt, one)
    inv_n = jnp.asarray(1.0 / n, vp.dtype)
    a = jnp.where(ok, inv_n / (jnp.sqrt(vp) * jnp.sqrt(vt)), zero)
    b_p = jnp.where(ok, scc * inv_n / vp, zero)
    b_t = jnp.where(ok, scc * inv_n / vt, zero)
    return a, b_p, b_t


def _high_pass_linear(x: jax.Array, hp_filter: highpass.Filter) -> jax.Array:
    """The high-pass as the linear map it is (its derivative): ``2 * conv2d``,
    filter normalised as in the forward."""
    hp_filter = highpass.normalised(hp_filter)
    return highpass._filter_taps(highpass.pad_for_high_pass(x, hp_filter), hp_filter, 1.0) * jnp.asarray(2.0, x.dtype)


class GradientFields(NamedTuple):
    """Per map pixel ``c``, what the gradient of the counted map's sum needs
    (:func:`gradient_fields`; ``None`` where that input's gradient is not wanted).

    ``a``: the covariance's coefficient; ``b_p``/``b_t``: the variances';
    ``e_p``/``e_t``: the means' offsets' terms, ``b_p dp - a dt`` / ``b_t dt - a dp``.
    """

    a: jax.Array
    b_p: Optional[jax.Array]
    b_t: Optional[jax.Array]
    e_p: Optional[jax.Array]
    e_t: Optional[jax.Array]


def window_fields(
    window: moments.CentredWindow, scc: jax.Array, keep: Optional[jax.Array], n: int, wanted: Tuple[bool, bool]
) -> GradientFields:
    """The per-pixel fields of the counted map sum's gradient
    (:class:`GradientFields`), from each window's centred statistics, its SCC,
    which map pixels count (``None``: all) and its ``n = w * w`` values."""
    a, b_p, b_t = _coefficients(window, scc, keep, n)
    dp, dt = window.dp, window.dt
    return GradientFields(
        a,
        b_p if wanted[0] else None,
        b_t if wanted[1] else None,
        b_p * dp - a * dt if wanted[0] else None,
        b_t * dt - a * dp if wanted[1] else None,
    )


def gradient_fields(planes: Planes, keep: Optional[jax.Array], config: Config, wanted: Tuple[bool, bool]) -> GradientFields:
    """The per-pixel fields of :func:`counted_sum_gradient` (elementwise in the
    window statistics)."""
    w = config.window_size
    return window_fields(planes.window, planes.scc, keep, w * w, wanted)


def counted_sum_gradient(
    planes: Planes, fields: GradientFields, config: Config
) -> Tuple[Optional[jax.Array], Optional[jax.Array]]:
    """The gradient of the sum of the counted map pixels in ``preds`` and/or
    ``target`` (where ``fields`` has them), input-shaped ``(..., H, W)``.

    Written from the definition and centred like the forward: the gradient in
    the high-passed ``p`` at pixel ``q`` sums, over the windows ``c`` that
    contain it, ``a_c (t_q - mt_c) - b_p,c (p_q - mp_c)`` (:func:`_coefficients`),
    with every deviation from a window's mean taken as a deviation from its
    centre pixel minus the mean's offset from it,
    ``t_q - mt_c = (t_q - t_c) - dt_c``: exact where the values are close,
    where the uncentred ``t_q sum a - sum a mt`` loses every digit. The
    offsets' terms are a plain window sum (:class:`GradientFields` ``e``). The
    high-pass is linear: its transpose carries the gradient to the input
    (missing pixels get 0). One more ``w * w`` pass, like the forward.
    """
    w = config.window_size
    p, t = planes.hp_p, planes.hp_t
    # The windows that contain q have their centres at q - after ... q + before.
    before, after = window_padding(w)

    def taps(x: jax.Array):
        return [v for row in moments.window_taps(x, w, after, before) for v in row]

    def box_sum(x: jax.Array) -> jax.Array:  # over the centres of the windows that contain q
        dims = (1,) * (x.ndim - 2) + (w, w)
        padded = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(after, before)] * 2)
        return lax.reduce_window(padded, 0.0, lax.add, dims, (1,) * x.ndim, "VALID")

    def gradient(own, other, b, e):
        # sum_c a_c (other_q - other_c) - b_c (own_q - own_c), plus sum_c e_c
        terms = [ac * (other - oc) - bc * (own - wc) for ac, bc, oc, wc in zip(taps(fields.a), taps(b), taps(other), taps(own))]
        g_hp = sum(terms[1:], terms[0]) + box_sum(e)
        (g,) = jax.linear_transpose(lambda x: _high_pass_linear(x, config.hp_filter), own)(g_hp)
        if planes.missing is not None:
            g = jnp.where(planes.missing, jnp.zeros_like(g), g)
        return g

    g_p = None if fields.b_p is None else gradient(p, t, fields.b_p, fields.e_p)
    g_t = None if fields.b_t is None else gradient(t, p, fields.b_t, fields.e_t)
    return g_p, g_t


def planes_map_tangent(
    planes: Planes, tangents: Tuple[Optional[jax.Array], Optional[jax.Array]], config: Config
) -> jax.Array:
    """The tangent of the SCC map of whole planes (:func:`planes_map`) for input
    tangents ``(d_preds, d_target)`` (``None``: zero): with :func:`_coefficients`
    (every pixel counted),
    ``d scc_c = sum_q a_c [(t_q - mt_c) dP_q + (p_q - mp_c) dT_q] - b_p,c (p_q - mp_c) dP_q - b_t,c (t_q - mt_c) dT_q``
    over the window of ``c``, deviations centred as in :func:`counted_sum_gradient`.
    Linear in the tangents (JAX transposes it for reverse mode)."""
    w = config.window_size
    a, b_p, b_t = _coefficients(planes.window, planes.scc, None, w * w)
    d_hp = [
        None if x is None else _high_pass_linear(jnp.where(planes.missing, jnp.zeros_like(x), x) if planes.missing is not None else x, config.hp_filter)
        for x in tangents
    ]
    before, after = window_padding(w)

    def taps(x: jax.Array):
        return [v for row in moments.window_taps(x, w, before, after) for v in row]

    dev_p = [(x - planes.hp_p) - planes.window.dp for x in taps(planes.hp_p)]
    dev_t = [(x - planes.hp_t) - planes.window.dt for x in taps(planes.hp_t)]
    total = jnp.zeros_like(a)
    if d_hp[0] is not None:
        dps = taps(d_hp[0])
        total = total + a * sum(e * d for e, d in zip(dev_t, dps)) - b_p * sum(e * d for e, d in zip(dev_p, dps))
    if d_hp[1] is not None:
        dts = taps(d_hp[1])
        total = total + a * sum(e * d for e, d in zip(dev_p, dts)) - b_t * sum(e * d for e, d in zip(dev_t, dts))
    return total


# --- the derivative of a band's counted map sum -----------------------------------


def _high_pass_transpose(hp: HighPassed, g: jax.Array, config: Config, bordered: bool) -> jax.Array:
    """The transpose of the high-pass of a band's rows (its derivative, the
    linear map ``x -> 2 * conv2d(x)``): a cotangent of the high-passed rows
    ``(..., r + w - 1, W)`` to one of the band's input rows (:class:`Band`),
    0 at missing pixels under ``ignore_nans``.

    ``bordered``: ``g`` comes with the ``kh - 1`` rows and ``kw - 1``
    columns on either side that the transposed filter reads (their values
    dropped), and the reflection's transpose is formed by position in the
    same pass (for the staged CPU walk, where a pad or autodiff's transpose
    of the reflection would each be a pass of their own; XLA for TPU makes
    more bytes of the positions). Otherwise ``g`` is padded here.
    """
    hp_filter = highpass.normalised(config.hp_filter)
    eh, ew = len(hp_filter) - 1, len(hp_filter[0]) - 1
    bh, bw = (eh, ew) if bordered else (0, 0)
    # The border and the image's outside are no high-pass outputs (the
    # window reads zeros there): their cotangent is dropped. (The columns by
    # position: a padded mask would cost the pass its vector loop.)
    inside = pad_spatial(hp.inside, (bh, bh), (bw, bw) if hp.inside.shape[-1] > 1 else (0, 0))
    inside = inside.reshape((1,) * (g.ndim - inside.ndim) + inside.shape)
    if bw:
        column = lax.broadcasted_iota(jnp.int32, (1,) * (g.ndim - 1) + g.shape[-1:], g.ndim - 1)
        inside = inside & (column >= bw) & (column < g.shape[-1] - bw)
    g = jnp.where(inside, g, jnp.zeros_like(g))
    if bordered:
        g = highpass.high_pass_transpose_taps(g, hp_filter)
        g = highpass.reflect_pad_transpose(g, *hp_padding(len(hp_filter[0])), axis=g.ndim - 1)
    else:
        g = highpass.high_pass_valid_transpose(g, hp_filter)
        (g,) = jax.linear_transpose(
            lambda x: highpass.pad_for_high_pass(x, hp_filter, rows=False),
            jax.ShapeDtypeStruct(g.shape[:-1] + (g.shape[-1] - ew,), g.dtype),
        )(g)
    if hp.missing is not None:
        g = jnp.where(hp.missing, jnp.zeros_like(g), g)
    return g


def reframe(x: jax.Array, have: Padding, want: Padding) -> jax.Array:
    """``x``, given with the padding ``have`` of its last two axes (rows,
    columns: ``(before, after)`` each), with the padding ``want`` instead
    (zeros where it is wider, cut where it is narrower; a negative width cuts
    into the unpadded part)."""
    for axis, (hb, ha), (wb, wa) in zip((x.ndim - 2, x.ndim - 1), have, want):
        lo, hi = hb - wb, ha - wa  # cut where positive, pad where negative
        x = lax.slice_in_dim(x, max(lo, 0), x.shape[axis] - max(hi, 0), axis=axis)
        if lo < 0 or hi < 0:
            widths = [(0, 0)] * x.ndim
            widths[axis] = (max(-lo, 0), max(-hi, 0))
            x = jnp.pad(x, widths)
    return x


def band_gradient(
    band: Band,
    config: Config,
    wanted: Tuple[bool, bool],
    *,
    pairing: str = "slices",
    rows: Optional[jax.Array] = None,
    stage=inline,
    padded: bool = False,
) -> Tuple[MapPixels, Tuple[Optional[jax.Array], Optional[jax.Array]]]:
    """The SCC map of a band (and which pixels count), and the gradient of
    the sum of its counted map pixels in the band's ``preds`` and/or
    ``target`` rows (where ``wanted``).

    Written from the definition: the gradient in the high-passed ``p`` at
    pixel ``q`` sums, over the windows ``c`` that contain it,
    ``a_c (t_q - mt_c) - b_p,c (p_q - mp_c)`` (:func:`_coefficients`); each
    deviation from a window's mean is the deviation from the window's centre
    pixel minus the mean's offset from it, and
    :func:`~jax_scc._src.moments.sum_over_windows` sums the deviations from
    the centre pixels separably, each one between two values of a row or a
    column (no cancellation), in O(w) per pixel. The derivative of the map
    sum costs about what the map costs; the high-pass's transpose
    (:func:`_high_pass_transpose`) then carries it to the band's input rows.

    Args:
      band: the band's input rows with their halo (:class:`Band`).
      config: the configuration.
      wanted: which of ``(preds, target)`` to differentiate in.
      pairing: how the window moments are formed (:func:`window_map`).
      rows: bool, broadcastable to the map band ``(..., r, W)``: the map
        pixels summed (with those that count), or ``None`` for all.
      stage: ``stage(fn, *args)`` returns ``fn(*args)``, computed as the
        execution strategy wants the results that several passes read (its
        fusion barrier: operands and results in memory); by default as is.
      padded: the staged results hold the zero padding that every pass
        reading them needs (for a strategy whose stages are in memory: a pad
        at each reader would be a copy; a compiler that fuses pads into
        their readers moves fewer bytes without); the windows' transpose is
        then formed with the border the high-pass's transpose reads.

    Returns:
      :class:`MapPixels` ``(..., r, W)`` and the two gradients, shaped like
      the band's rows (``None`` where not wanted).
    """
    w = config.window_size
    before, after = window_padding(w)
    # The windows' transpose reads each value and field at the centres of
    # the windows that reach its output, (after, before) more rows and
    # columns than it writes (:func:`~jax_scc._src.moments.sum_over_windows`).
    if padded:
        # Its output gains the border the high-pass's transpose reads, and
        # its columns the window's padding (before, before): the output gains
        # before - after columns at the start (dropped below), and the high-
        # passed rows are held once with the padding of every pass.
        bh, bw = len(config.hp_filter) - 1, len(config.hp_filter[0]) - 1
        sow = ((after + bh, before + bh), (before + bw, before + bw))
        stored, extra = sow, before - after
    else:  # the columns padded by the row pass (fused into it)
        bw, sow, stored, extra = 0, ((after, before), (0, 0)), ((0, 0), (0, 0)), 0
    hp = stage(functools.partial(padded_rows, pad=stored), high_pass(band, config))
    # The window's: the rows as high-passed, the columns padded (before, after).
    p, t = (reframe(x, stored, ((0, 0), (before, after))) for x in (hp.preds, hp.target))
    # In memory (a copy: a stage computing the fields from the moments as
    # its operands, with no copy, measured slower).
    mom = stage(lambda m: m, moments.local_moments(p, t, w, pairing=pairing, rows_padded=True, columns_padded=True))
    pixels = _map_pixels(hp, mom, config)
    keep = pixels.keep
    if rows is not None:
        keep = rows if keep is None else keep & rows
    centre = lambda x: reframe(x, stored, ((-before, -after), (0, 0)))  # noqa: E731
    window = moments.CentredWindow(mom.mp - centre(hp.preds), mom.mt - centre(hp.target), mom.vp, mom.vt, mom.cov)
    # The fields at the same centres as the values (the map's rows are the
    # high-passed rows' without the window's halo): 0 where no window is centred.
    fields = window_fields(window, pixels.map, keep, w * w, wanted)
    at_centres = ((sow[0][0] + before, sow[0][1] + after), sow[1])
    a, b_p, b_t, e_p, e_t = stage(
        lambda f: GradientFields(*(None if x is None else pad_spatial(x, *at_centres) for x in f)), fields
    )
    pv, tv = (reframe(x, stored, sow) for x in (hp.preds, hp.target))
    sums = {}
    if b_p is not None:
        sums["p"] = ([(a, tv), (b_p, pv, -1)], e_p)
    if b_t is not None:
        sums["t"] = ([(a, pv), (b_t, tv, -1)], e_t)
    grads = moments.sum_over_windows(list(sums.values()), w, stage, columns_padded=padded)
    width = p.shape[-1] - (w - 1) + 2 * bw  # the columns and the border's
    grads = dict(zip(sums, (lax.slice_in_dim(g, extra, extra + width, axis=g.ndim - 1) for g in grads)))
    return pixels, tuple(None if k not in grads else _high_pass_transpose(hp, grads[k], config, padded) for k in "pt")
