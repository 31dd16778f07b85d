"""Moving between the public layouts and the internal one (spatial axes last)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def to_nchw(x: jax.Array, data_format: str) -> jax.Array:
    """``(N,C,H,W)``/``(N,H,W)`` view with the spatial axes last."""
    if x.ndim == 4 and data_format == "NHWC":
        return jnp.moveaxis(x, -1, 1)
    return x


def from_nchw(x: jax.Array, data_format: str) -> jax.Array:
    """Inverse of :func:`to_nchw`."""
    if x.ndim == 4 and data_format == "NHWC":
        return jnp.moveaxis(x, 1, -1)
    return x
