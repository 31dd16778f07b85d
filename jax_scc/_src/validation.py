"""Argument checks and normalisation, all done in Python at trace time.

Every check here looks only at static information (shapes, dtypes, Python
configuration values), so the errors fire identically with and without
``jax.jit``: under ``jit`` they are raised while tracing.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

#: The default high-pass filter (a discrete Laplacian), as used by sewar and torchmetrics.
DEFAULT_HP_FILTER: Tuple[Tuple[float, ...], ...] = (
    (-1.0, -1.0, -1.0),
    (-1.0, 8.0, -1.0),
    (-1.0, -1.0, -1.0),
)

DATA_FORMATS = ("NCHW", "NHWC")
METHODS = ("auto", "slices", "conv")
REDUCTIONS = ("mean", "none", None)

Filter = Tuple[Tuple[float, ...], ...]


class Config(NamedTuple):
    """Hashable, static configuration of one SCC evaluation."""

    hp_filter: Filter
    window_size: int
    data_format: str
    method: str = "slices"  # resolved: "slices" or "conv", never "auto"


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_hp_filter(hp_filter: Any) -> Filter:
    """Returns ``hp_filter`` as a hashable tuple of tuples of Python floats.

    Raises:
      TypeError: ``hp_filter`` is traced, not numeric, or complex.
      ValueError: ``hp_filter`` is not 2-D, is empty, or holds non-finite values.
    """
    if hp_filter is None:
        return DEFAULT_HP_FILTER
    if _is_tracer(hp_filter):
        raise TypeError(
            "`hp_filter` must be a concrete 2-D array-like (it is static configuration), "
            "but got a traced value. Pass it through `static_argnames`, close over it, "
            "or give it as a tuple of tuples."
        )
    try:
        arr = np.asarray(hp_filter)
    except Exception as e:  # pragma: no cover - numpy raises many kinds of errors
        raise TypeError(
            f"`hp_filter` must be a 2-D real array-like, got {type(hp_filter).__name__}."
        ) from e
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(
            f"`hp_filter` must be a 2-D real array-like of numbers, got dtype {arr.dtype}."
        )
    if np.iscomplexobj(arr):
        raise TypeError(f"`hp_filter` must be real, got complex dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise ValueError(
            f"`hp_filter` must be 2-D, got {arr.ndim}-D array of shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"`hp_filter` must not be empty, got shape {arr.shape}.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`hp_filter` must hold finite values, got {arr.tolist()}.")
    return tuple(tuple(float(v) for v in row) for row in arr)


def check_window_size(window_size: Any) -> int:
    """Returns ``window_size`` as a Python int >= 1 (the image bound is checked later)."""
    if _is_tracer(window_size):
        raise ValueError(
            "`window_size` must be a concrete positive Python int (it is static "
            "configuration), but got a traced value. Pass it through `static_argnames`."
        )
    if isinstance(window_size, (bool, np.bool_)) or not isinstance(
        window_size, numbers.Integral
    ):
        raise ValueError(
            f"`window_size` must be a positive integer, got {window_size!r} "
            f"of type {type(window_size).__name__}."
        )
    window_size = int(window_size)
    if window_size < 1:
        raise ValueError(f"`window_size` must be a positive integer, got {window_size}.")
    return window_size


def check_reduction(reduction: Any) -> str:
    if not (reduction is None or isinstance(reduction, str)) or reduction not in REDUCTIONS:
        raise ValueError(
            f"`reduction` must be one of 'mean', 'none' or None, got {reduction!r}."
        )
    return "none" if reduction is None else reduction


def check_data_format(data_format: Any) -> str:
    if not isinstance(data_format, str) or data_format not in DATA_FORMATS:
        raise ValueError(
            f"`data_format` must be one of 'NCHW' or 'NHWC', got {data_format!r}."
        )
    return data_format


def check_method(method: Any) -> str:
    """Returns the implementation to use: ``"slices"`` or ``"conv"``.

    ``"auto"`` picks by the default backend, as measured in ``benchmarks/``:
    ``"slices"`` on CPU (chunked, with fusion barriers) and on GPU (one
    whole-batch graph; 1.2-4.9x faster than ``"conv"`` on an H200), and
    ``"conv"`` on other backends (TPU: not measured; its convolutions run on
    the matrix units).
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"`method` must be one of 'auto', 'slices' or 'conv', got {method!r}."
        )
    if method == "auto":
        return "slices" if jax.default_backend() in ("cpu", "gpu") else "conv"
    return method


def make_config(
    hp_filter: Any, window_size: Any, data_format: Any, method: Any = "auto"
) -> Config:
    return Config(
        hp_filter=check_hp_filter(hp_filter),
        window_size=check_window_size(window_size),
        data_format=check_data_format(data_format),
        method=check_method(method),
    )


def compute_dtype(dtype: Any) -> jnp.dtype:
    """The dtype SCC is computed in for inputs of ``dtype``.

    Integers, booleans and floats narrower than 32 bits are computed in float32;
    float32 stays float32; float64 stays float64 (it only exists with x64 on).
    """
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def as_image_array(x: Any, name: str) -> jax.Array:
    """Converts ``x`` to a real JAX array, rejecting what cannot be scored."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.")
    if not isinstance(x, (jax.Array, np.ndarray)) and not hasattr(x, "__array__"):
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.")
    try:
        arr = jnp.asarray(x)
    except Exception as e:
        raise TypeError(
            f"`{name}` must be an array of real numbers, got {type(x).__name__}."
        ) from e
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{name}` must be real, got complex dtype {arr.dtype}.")
    if not (
        jnp.issubdtype(arr.dtype, jnp.floating)
        or jnp.issubdtype(arr.dtype, jnp.integer)
        or arr.dtype == jnp.bool_
    ):
        raise TypeError(f"`{name}` must be real numbers, got dtype {arr.dtype}.")
    return arr


def check_images(
    preds: Any, target: Any, config: Config, name_p: str = "preds", name_t: str = "target"
) -> Tuple[jax.Array, jax.Array]:
    """Validates an image pair and returns it cast to the common compute dtype.

    Returns:
      ``(preds, target)`` as JAX arrays of rank 3 or 4 in the compute dtype.
    """
    preds = as_image_array(preds, name_p)
    target = as_image_array(target, name_t)
    if preds.shape != target.shape:
        raise ValueError(
            f"`{name_p}` and `{name_t}` must have the same shape, got "
            f"{name_p}: {preds.shape} and {name_t}: {target.shape}."
        )
    if preds.ndim not in (3, 4):
        layout = config.data_format
        four_d = "(N,C,H,W)" if layout == "NCHW" else "(N,H,W,C)"
        raise ValueError(
            f"`{name_p}` and `{name_t}` must be 3-D (N,H,W) or 4-D {four_d} for "
            f"data_format={layout!r}, got {preds.ndim}-D shape {preds.shape}."
        )
    h, w = spatial_shape(preds.shape, config.data_format)
    ws = config.window_size
    if ws > h or ws > w:
        raise ValueError(
            f"`window_size` must be at most the image size, got window_size={ws} "
            f"for images of size {h}x{w} (H x W)."
        )
    kh, kw = len(config.hp_filter), len(config.hp_filter[0])
    # Reflection can only repeat the image once on each side.
    if kh // 2 > h or kw // 2 > w:
        raise ValueError(
            f"`hp_filter` of shape ({kh}, {kw}) is too large for images of size "
            f"{h}x{w} (H x W): reflect padding needs ceil((k-1)/2) <= image size."
        )
    dtype = jnp.promote_types(compute_dtype(preds.dtype), compute_dtype(target.dtype))
    return preds.astype(dtype), target.astype(dtype)


def spatial_shape(shape: Tuple[int, ...], data_format: str) -> Tuple[int, int]:
    if len(shape) == 3 or data_format == "NCHW":
        return shape[-2], shape[-1]
    return shape[-3], shape[-2]


def check_mask(mask: Optional[Any], batch: int) -> Optional[jax.Array]:
    """Validates a per-sample boolean mask of shape ``(batch,)``."""
    if mask is None:
        return None
    mask = as_image_array(mask, "mask")
    if mask.shape != (batch,):
        raise ValueError(
            f"`mask` must have shape (N,) = ({batch},) matching the batch, got {mask.shape}."
        )
    if mask.dtype != jnp.bool_:
        raise TypeError(f"`mask` must be a boolean array, got dtype {mask.dtype}.")
    return mask


def check_ignore_nans(ignore_nans: Any) -> bool:
    """Returns ``ignore_nans`` if it is a Python bool (it is static configuration)."""
    if not isinstance(ignore_nans, bool):
        raise TypeError(
            "`ignore_nans` must be a Python bool (it is static configuration), got "
            f"{ignore_nans!r} of type {type(ignore_nans).__name__}."
        )
    return ignore_nans
