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
* ``jax_scc.clu.SCC``: a ``clu.metrics.Metric`` (needs ``clu``).
"""

from jax_scc._src.config import DEFAULT_HP_FILTER
from jax_scc._src.extents import pad_to_canvas
from jax_scc._src.functional import scc_map, spatial_correlation_coefficient
from jax_scc._src.metric import SpatialCorrelationCoefficient, scc_update
from jax_scc._src.state import SCCState, scc_compute, scc_init, scc_merge, scc_sync
from jax_scc._version import __version__

__all__ = [
    "DEFAULT_HP_FILTER",
    "SCCState",
    "SpatialCorrelationCoefficient",
    "pad_to_canvas",
    "scc_compute",
    "scc_init",
    "scc_map",
    "scc_merge",
    "scc_sync",
    "scc_update",
    "spatial_correlation_coefficient",
]
