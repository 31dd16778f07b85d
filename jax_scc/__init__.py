"""jax_scc: the Spatial Correlation Coefficient (SCC) image metric in JAX.

Exact in float32, callable under ``jax.jit``, ``vmap``-able over image stacks
and differentiable as a loss.
"""

from jax_scc._src.metric import SpatialCorrelationCoefficient
from jax_scc._src.scc import scc_map, spatial_correlation_coefficient
from jax_scc._src.state import (
    SCCState,
    scc_compute,
    scc_init,
    scc_merge,
    scc_sync,
    scc_update,
)
from jax_scc._src.validation import DEFAULT_HP_FILTER

from jax_scc._version import __version__

__all__ = [
    "DEFAULT_HP_FILTER",
    "SCCState",
    "SpatialCorrelationCoefficient",
    "scc_compute",
    "scc_init",
    "scc_map",
    "scc_merge",
    "scc_sync",
    "scc_update",
    "spatial_correlation_coefficient",
]
