"""SCC with NaN pixels treated as missing data (``ignore_nans=True``).

Remote-sensing and medical images often mark no-data pixels (outside the scan
circle, under a cloud mask) with NaN. Without special handling one NaN makes a
whole sample score NaN. Here:

* a map pixel is **invalid** when any input pixel inside its footprint is NaN in
  ``preds`` or ``target`` (per channel). The footprint is the union, over the
  ``w x w`` window (zero padded: padding is never missing), of the full
  ``kh x kw`` support of the high-pass filter on the symmetric-reflect padded
  input, so a NaN near a border also reaches the pixels that see its reflection.
  These are exactly the map pixels that come out NaN when the definition is
  evaluated with NaN arithmetic;
* the map is computed on inputs with NaN replaced by 0 (through ``jnp.where``,
  so gradients stay finite) and the invalid pixels are set to NaN in the map;
* a sample's score is the mean of its valid map pixels over pixels and channels,
  and NaN when it has no valid pixel.

Inf is not treated as missing: it still makes the windows that see it NaN, and
so the sample's score NaN.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jax_scc._src.highpass import hp_padding, reflect_pad
from jax_scc._src.layout import from_nchw as _from_nchw
from jax_scc._src.layout import to_nchw as _to_nchw
from jax_scc._src.validation import Config
from jax_scc._src.windows import window_padding

#: ``map_fn(preds, target, config)`` computes the SCC map of ``(..., H, W)`` images.
MapFn = Callable[[jax.Array, jax.Array, Config], jax.Array]


def _dilate(mask: jax.Array, kh: int, kw: int) -> jax.Array:
    """Logical OR over ``kh x kw`` windows of an already padded ``(..., H', W')`` mask."""
    if kh == 1 and kw == 1:
        return mask
    dims = (1,) * (mask.ndim - 2) + (kh, kw)
    return lax.reduce_window(mask, False, lax.bitwise_or, dims, (1,) * mask.ndim, "VALID")


def invalid_pixels(missing: jax.Array, config: Config) -> jax.Array:
    """Map pixels whose footprint holds a missing input pixel.

    Args:
      missing: boolean ``(..., H, W)``, True where ``preds`` or ``target`` is NaN.
      config: the SCC configuration (filter shape and window size are used).

    Returns:
      Boolean ``(..., H, W)``: True where the map pixel is invalid.
    """
    kh, kw = len(config.hp_filter), len(config.hp_filter[0])
    lead = [(0, 0)] * (missing.ndim - 2)
    # High-pass stage: the symmetric-reflect padding repeats border pixels, so a
    # missing pixel near a border is seen again through its reflection.
    (top, bottom), (left, right) = hp_padding(kh), hp_padding(kw)
    missing = reflect_pad(missing, top, bottom, missing.ndim - 2)
    missing = reflect_pad(missing, left, right, missing.ndim - 1)
    missing = _dilate(missing, kh, kw)
    # Window stage: zero padding holds no data, so it is never missing.
    w = config.window_size
    win_pad = window_padding(w)
    missing = jnp.pad(missing, lead + [win_pad, win_pad], constant_values=False)
    return _dilate(missing, w, w)


def _masked_map(
    preds: jax.Array, target: jax.Array, config: Config, map_fn: MapFn
) -> tuple[jax.Array, jax.Array]:
    """``(map with NaN inputs read as 0, invalid mask)``, both ``(N, [C,] H, W)``."""
    p = _to_nchw(preds, config.data_format)
    t = _to_nchw(target, config.data_format)
    nan_p, nan_t = jnp.isnan(p), jnp.isnan(t)
    # jnp.where (not nan_to_num on a product) keeps the gradient at the NaN
    # pixels exactly 0 instead of NaN.
    p = jnp.where(nan_p, jnp.zeros_like(p), p)
    t = jnp.where(nan_t, jnp.zeros_like(t), t)
    return map_fn(p, t, config), invalid_pixels(nan_p | nan_t, config)


@functools.partial(jax.jit, static_argnames=("config", "map_fn"))
def scc_map_ignoring_nans(
    preds: jax.Array, target: jax.Array, config: Config, map_fn: MapFn
) -> jax.Array:
    """The SCC map with NaN at the invalid pixels; shape and layout of ``preds``."""
    m, invalid = _masked_map(preds, target, config, map_fn)
    m = jnp.where(invalid, jnp.full_like(m, jnp.nan), m)
    return _from_nchw(m, config.data_format)


@functools.partial(jax.jit, static_argnames=("config", "map_fn"))
def per_sample_ignoring_nans(
    preds: jax.Array, target: jax.Array, config: Config, map_fn: MapFn
) -> jax.Array:
    """Per-sample mean of the valid map pixels, shape ``(N,)``; NaN where none is valid."""
    m, invalid = _masked_map(preds, target, config, map_fn)
    valid = ~invalid
    total = jnp.where(valid, m, jnp.zeros_like(m))
    count = valid.astype(m.dtype)
    # Sum one axis at a time: short float32 partial sums (as the unmasked mean).
    for _ in range(m.ndim - 1):
        total = jnp.sum(total, axis=-1)
        count = jnp.sum(count, axis=-1)
    has_data = count > 0
    score = total / jnp.where(has_data, count, jnp.ones_like(count))
    return jnp.where(has_data, score, jnp.full_like(score, jnp.nan))
