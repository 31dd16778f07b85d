"""Checks of the arrays a call is given, done in Python at trace time.

Every check looks only at static information (shapes, dtypes and the
:class:`~jax_scc._src.config.Config`), so the errors fire identically with and
without ``jax.jit``: under ``jit`` they are raised while tracing.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_scc._src.config import Config

# Channel counts of ordinary images (grey, grey+alpha, RGB, RGBA).
_IMAGE_CHANNELS = (1, 2, 3, 4)


def compute_dtype(dtype: Any) -> jnp.dtype:
    """The dtype SCC is computed in for inputs of ``dtype``.

    Integers, booleans and floats narrower than 32 bits are computed in float32;
    float32 stays float32; float64 stays float64 (it only exists with x64 on).
    """
    if jnp.dtype(dtype) == jnp.float64:
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def is_real_dtype(dtype: Any) -> bool:
    """Whether values of ``dtype`` can be scored: floats, integers, booleans."""
    return bool(
        jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_
    )


def as_real_array(x: Any, name: str) -> jax.Array:
    """``x`` as a JAX array of real numbers (or booleans), or a ``TypeError``."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.")
    if not isinstance(x, (jax.Array, np.ndarray, list, tuple)) and not hasattr(
        x, "__array__"
    ):
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.")
    try:
        arr = jnp.asarray(x)
    except Exception as e:
        raise TypeError(
            f"`{name}` must be an array of real numbers, got {type(x).__name__}."
        ) from e
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{name}` must be real, got complex dtype {arr.dtype}.")
    if not is_real_dtype(arr.dtype):
        raise TypeError(f"`{name}` must be real numbers, got dtype {arr.dtype}.")
    return arr


def spatial_shape(shape: Tuple[int, ...], data_format: str) -> Tuple[int, int]:
    """``(H, W)`` of a rank-3 or rank-4 image batch."""
    if len(shape) == 3 or data_format == "NCHW":
        return shape[-2], shape[-1]
    return shape[-3], shape[-2]


def _channels_last_hint(shape: Tuple[int, ...], config: Config) -> str:
    """Advice when an NCHW batch looks like an NHWC one, else ``""``."""
    if len(shape) != 4 or config.data_format != "NCHW":
        return ""
    _, c, h, w = shape
    if w in _IMAGE_CHANNELS and c not in _IMAGE_CHANNELS and h > w:
        return (
            f" The shape {shape} looks channels-last (N, H, W, C) with C={w}; "
            "pass data_format='NHWC'."
        )
    return ""


def check_pair(preds: Any, target: Any, config: Config) -> Tuple[jax.Array, jax.Array]:
    """Validates an image pair; returns it as JAX arrays in the compute dtype.

    Raises:
      TypeError: an input is not an array of real numbers.
      ValueError: shapes differ, the rank is not 3 or 4, there are no channels,
        or the window or filter does not fit the images. An NCHW batch whose
        shape looks channels-last says so; one that fits anyway warns.
    """
    preds = as_real_array(preds, "preds")
    target = as_real_array(target, "target")
    if preds.shape != target.shape:
        raise ValueError(
            "`preds` and `target` must have the same shape, got "
            f"preds: {preds.shape} and target: {target.shape}."
        )
    shape = preds.shape
    if preds.ndim not in (3, 4):
        four_d = "(N,C,H,W)" if config.data_format == "NCHW" else "(N,H,W,C)"
        raise ValueError(
            f"`preds` and `target` must be 3-D (N,H,W) or 4-D {four_d} for "
            f"data_format={config.data_format!r}, got {preds.ndim}-D shape {shape}."
        )
    hint = _channels_last_hint(shape, config)
    if preds.ndim == 4 and shape[1 if config.data_format == "NCHW" else 3] == 0:
        raise ValueError(
            f"`preds` and `target` must have at least one channel, got shape {shape} "
            f"for data_format={config.data_format!r}."
        )
    h, w = spatial_shape(shape, config.data_format)
    ws = config.window_size
    if ws > h or ws > w:
        raise ValueError(
            f"`window_size` must be at most the image size, got window_size={ws} "
            f"for images of size {h}x{w} (H x W).{hint}"
        )
    kh, kw = len(config.hp_filter), len(config.hp_filter[0])
    # Symmetric reflection can only repeat the image once on each side.
    if kh // 2 > h or kw // 2 > w:
        raise ValueError(
            f"`hp_filter` of shape ({kh}, {kw}) is too large for images of size "
            f"{h}x{w} (H x W): reflect padding needs ceil((k-1)/2) <= image size.{hint}"
        )
    if hint:
        warnings.warn(
            f"`preds` and `target` are scored as {shape[1]} channels of {h}x{w} "
            f"images (data_format='NCHW').{hint}",
            UserWarning,
            stacklevel=4,
        )
    dtype = jnp.promote_types(compute_dtype(preds.dtype), compute_dtype(target.dtype))
    return preds.astype(dtype), target.astype(dtype)


def check_mask(mask: Optional[Any], batch: int) -> Optional[jax.Array]:
    """Validates a per-sample boolean mask of shape ``(batch,)``."""
    if mask is None:
        return None
    mask = as_real_array(mask, "mask")
    if mask.shape != (batch,):
        raise ValueError(
            f"`mask` must have shape (N,) = ({batch},) matching the batch, got {mask.shape}."
        )
    if mask.dtype != jnp.bool_:
        raise TypeError(f"`mask` must be a boolean array, got dtype {mask.dtype}.")
    return mask
