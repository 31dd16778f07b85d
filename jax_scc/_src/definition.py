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
plane is the band ``[0, H)`` (:func:`scc_map_planes`); the CPU execution
strategy walks large planes band by band. Nothing here asks which backend it
runs on: execution strategies may only pass a ``stage`` hook (a fusion
barrier) through to the intermediate results.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from jax_scc._src import highpass, moments
from jax_scc._src.config import Config
from jax_scc._src.highpass import hp_padding, reflect_pad
from jax_scc._src.moments import Moments, window_padding

Stage = Callable[[Any], Any]


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


class Band(NamedTuple):
    """Rows ``[r0, r0 + r)`` of ``(..., H, W)`` planes, ready for the two stages.

    Attributes:
      preds, target: input rows ``r0 - before ... r0 + r + after - 1`` (see
        :func:`halo`), shape ``(..., r + before + after, W)``. Rows outside the
        image hold the symmetric reflection where the filter reads them; rows
        that only the window's zero padding covers may hold anything.
      inside: bool ``(r + w - 1, 1)``: which high-passed rows
        (``r0 - ceil((w-1)/2) ... r0 + r + floor((w-1)/2) - 1``) lie in the image.
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


def band_map(
    band: Band,
    config: Config,
    *,
    pairing: str = "slices",
    stage: Optional[Stage] = None,
    stage_steps: bool = False,
) -> MapPixels:
    """The SCC map of a band, and which of its pixels count.

    Args:
      band: the band's input rows with their halo (:class:`Band`).
      config: the configuration (filter, window, ``ignore_nans``, ``ignore_flat``).
      pairing: how the window moments form their pairs (``"slices"``/``"conv"``).
      stage: hook applied to the high-passed rows and the window passes (the
        CPU strategy's fusion barrier); ``None`` for none.
      stage_steps: apply ``stage`` to every doubling step of the windows.

    Returns:
      :class:`MapPixels` of shape ``(..., r, W)``.
    """
    p, t = band.preds, band.target
    inside = band.inside.reshape((1,) * (p.ndim - 2) + band.inside.shape)
    missing = None
    if config.ignore_nans:
        # Missing data is read as 0 (jnp.where keeps the gradient there exactly
        # 0 instead of NaN) and its footprint is left out below.
        missing = jnp.isnan(p) | jnp.isnan(t)
        p = jnp.where(missing, jnp.zeros_like(p), p)
        t = jnp.where(missing, jnp.zeros_like(t), t)
    hp_filter = highpass.normalised(config.hp_filter)
    hp_p = highpass.high_pass_valid(highpass.pad_for_high_pass(p, hp_filter, rows=False), hp_filter, band.sigma_p)
    hp_t = highpass.high_pass_valid(highpass.pad_for_high_pass(t, hp_filter, rows=False), hp_filter, band.sigma_t)
    # The window's zero padding: high-passed rows outside the image are 0.
    hp_p = jnp.where(inside, hp_p, jnp.zeros_like(hp_p))
    hp_t = jnp.where(inside, hp_t, jnp.zeros_like(hp_t))
    if stage is not None:
        hp_p, hp_t = stage((hp_p, hp_t))  # computed once, not once per window tap
    mom = moments.local_moments(
        hp_p,
        hp_t,
        config.window_size,
        pairing=pairing,
        rows_padded=True,
        stage=stage,
        stage_steps=stage_steps,
    )
    scc = scc_from_moments(mom)
    keep = None
    if missing is not None:
        keep = ~_missing_footprint(missing, inside, config)
    if config.ignore_flat:
        # A flat target window scores 0 whatever the prediction: leaving it out
        # hides no penalty. (A NaN variance is kept, so that NaN propagates.)
        structured = ~(jnp.maximum(mom.vt, 0) == 0)
        keep = structured if keep is None else keep & structured
    return MapPixels(scc, keep)


def inside_rows(r0: Any, r: int, h: int, w: int) -> jax.Array:
    """bool ``(r + w - 1, 1)``: high-passed rows of a band that lie in the image."""
    top, _ = window_padding(w)
    rows = r0 - top + jnp.arange(r + w - 1)
    return ((rows >= 0) & (rows < h))[:, None]


def whole_planes(p: jax.Array, t: jax.Array, config: Config) -> Band:
    """The band ``[0, H)`` of whole ``(..., H, W)`` planes."""
    kh = len(config.hp_filter)
    w = config.window_size
    (hp_top, hp_bottom), (win_top, win_bottom) = hp_padding(kh), window_padding(w)
    axis = p.ndim - 2

    def extend(x: jax.Array) -> jax.Array:
        x = reflect_pad(x, hp_top, hp_bottom, axis)
        widths = [(0, 0)] * x.ndim
        widths[axis] = (win_top, win_bottom)  # read only by the window's zero rows
        return jnp.pad(x, widths)

    hp_filter = highpass.normalised(config.hp_filter)
    sigma_p = highpass.grid_scale(highpass.finite_peak(p), hp_filter)
    sigma_t = highpass.grid_scale(highpass.finite_peak(t), hp_filter)
    h = p.shape[-2]
    return Band(extend(p), extend(t), inside_rows(0, h, h, w), sigma_p, sigma_t)


def scc_map_planes(p: jax.Array, t: jax.Array, config: Config, **kwargs: Any) -> MapPixels:
    """The SCC map of whole ``(..., H, W)`` planes: the definition in one call.

    ``kwargs`` go to :func:`band_map`.
    """
    return band_map(whole_planes(p, t, config), config, **kwargs)


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


def map_with_gaps(pixels: MapPixels) -> jax.Array:
    """The map, NaN at the pixels that do not count."""
    m, keep = pixels
    return m if keep is None else jnp.where(keep, m, jnp.full_like(m, jnp.nan))
