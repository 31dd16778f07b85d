"""jax_scc: the Spatial Correlation Coefficient (SCC) image metric in JAX.

Exact in float32, callable under ``jax.jit``, ``vmap``-able over image stacks
and differentiable as a loss.

Public API:

* :func:`spatial_correlation_coefficient` and :func:`scc_map`: the functional metric;
* :func:`pad_to_canvas`: images of different sizes as one batch and their
  ``sizes`` (every entry point takes ``sizes=``);
* :class:`SCCState`, :func:`scc_init`, :func:`scc_update`, :func:`scc_merge`,
  :func:`scc_compute`, :func:`scc_sync`: running totals as a pure pytree;
* :class:`SpatialCorrelationCoefficient`: a stateful, torchmetrics-style shell;
* :func:`pansharpening_scc`, :func:`pansharpening_scc_map`, :func:`global_scc`:
  the SCCs of remote sensing (the pansharpening toolbox's sCC, Zhou's global SCC),
  with :class:`PooledSCCState`, :func:`pooled_scc_init`, :func:`pooled_scc_update`,
  :func:`pooled_scc_merge`, :func:`pooled_scc_compute`, :func:`pooled_scc_sync` for streams;
* ``jax_scc.clu.SCC``: a ``clu.metrics.Metric`` (needs ``clu``);
* ``jax_scc.nnx.SCC``: a ``flax.nnx.Metric`` (needs ``flax``).
"""

from jax_scc._src.config import DEFAULT_HP_FILTER
from jax_scc._src.extents import pad_to_canvas
from jax_scc._src.functional import scc_map, spatial_correlation_coefficient
from jax_scc._src.metric import SpatialCorrelationCoefficient, scc_update
from jax_scc._src.pooled import (
    PooledSCCState,
    pooled_scc_compute,
    pooled_scc_init,
    pooled_scc_merge,
    pooled_scc_sync,
    pooled_scc_update,
)
from jax_scc._src.remote_sensing import global_scc, pansharpening_scc, pansharpening_scc_map
from jax_scc._src.state import SCCState, scc_compute, scc_init, scc_merge, scc_sync
from jax_scc._version import __version__

__all__ = [
    "DEFAULT_HP_FILTER",
    "PooledSCCState",
    "SCCState",
    "SpatialCorrelationCoefficient",
    "global_scc",
    "pad_to_canvas",
    "pansharpening_scc",
    "pansharpening_scc_map",
    "pooled_scc_compute",
    "pooled_scc_init",
    "pooled_scc_merge",
    "pooled_scc_sync",
    "pooled_scc_update",
    "scc_compute",
    "scc_init",
    "scc_map",
    "scc_merge",
    "scc_sync",
    "scc_update",
    "spatial_correlation_coefficient",
]
