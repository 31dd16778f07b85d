"""jax_scc: the Spatial Correlation Coefficient (SCC) image metric in JAX.

Exact in float32, callable under ``jax.jit``, ``vmap``-able over image stacks
and differentiable as a loss.
"""

from jax_scc._src.scc import scc_map, spatial_correlation_coefficient
from jax_scc._src.validation import DEFAULT_HP_FILTER

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_HP_FILTER",
    "scc_map",
    "spatial_correlation_coefficient",
]
