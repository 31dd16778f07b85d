"""How the definition is executed: the one place that asks which backend runs.

Two strategies compute the same numbers (the same definition, the same
arithmetic; only the order of a few float32 additions may differ):

* :mod:`~jax_scc._src.execution.chunked` (CPU): the batch walked in
  cache-sized chunks (whole samples, planes, or bands of rows);
* :mod:`~jax_scc._src.execution.whole` (GPU, TPU): one graph for the batch.

``method`` chooses how the window moments are formed: ``"slices"`` (blocks
paired by shifted slices, O(log w) doubling steps), ``"conv"`` (the same pairs
by dilated 2-tap depthwise ``lax.conv``) or ``"direct"`` (every window's ``w``
values per pass at once: O(w) arithmetic, one read per pass; on CPU as fast
as slices up to 5 x 5 windows, 7x slower at 8 x 8). ``"auto"`` picks by
backend, as measured in ``benchmarks/``: on CPU (chunked) direct up to
``_DIRECT_UP_TO`` and slices above; slices on GPU (whole graph; 1.2-4.9x
faster than conv on an H200; direct not yet measured there); conv on other backends (TPU: not measured; its convolutions run on the matrix
units). Every method runs chunked on CPU, as one graph elsewhere.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jax_scc._src import extents
from jax_scc._src.config import Config
from jax_scc._src.execution import chunked, whole


# On CPU, windows up to this size are formed directly: as fast as the doubling
# tree or faster (benchmarks/results/cpu.md, window table), and exact to float32
# rounding on 2 x 2 windows of quantized images, where the tree is not.
_DIRECT_UP_TO = 5


class Strategy(NamedTuple):
    """A resolved way to run the definition."""

    name: str  # "chunked" or "whole"
    pairing: str  # "slices", "conv" or "direct"

    @property
    def module(self):
        return chunked if self.name == "chunked" else whole


def strategy(config: Config, backend: Optional[str] = None) -> Strategy:
    """The strategy for ``config`` on ``backend`` (default: JAX's default backend)."""
    backend = backend or jax.default_backend()
    pairing = config.method
    if pairing == "auto":
        if backend == "cpu":
            pairing = "direct" if config.window_size <= _DIRECT_UP_TO else "slices"
        else:
            pairing = "slices" if backend == "gpu" else "conv"
    return Strategy("chunked" if backend == "cpu" else "whole", pairing)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _scc(p: jax.Array, t: jax.Array, sizes: Optional[jax.Array], config: Config, output: str) -> jax.Array:
    s = strategy(config)
    if output == "map":
        return s.module.scc_map(p, t, config, s.pairing, sizes=sizes)
    return s.module.scores(p, t, config, s.pairing, sizes=sizes)[0]


@functools.partial(_scc.defjvp, symbolic_zeros=True)
def _scc_jvp(config: Config, output: str, primals, tangents):
    """SCC's derivative rule, computed by the same strategy in the same walk as
    the value.

    * Per-sample scores (the loss path): the walk also returns, chunk by chunk,
      the gradient of each sample's sum of counted map pixels (a chunk's
      reverse-mode derivative, taken while it is in cache); the tangent is its
      inner product with the input tangents over the sample, divided by the
      number of counted pixels. Linear in the tangents, so JAX's reverse mode
      only multiplies the stored gradients (one per differentiated input) by
      the cotangent: no second walk, no recomputation.
    * The map: the tangent of every map pixel (:func:`~jax_scc._src.definition.band_map`),
      linear in the tangents; JAX transposes it, and the strategy checkpoints
      it chunk by chunk.
    """
    s = strategy(config)
    p, t, sizes = primals  # the sizes (integers) have no tangent
    tangents = tuple(None if type(x) is SymbolicZero else x for x in tangents[:2])
    if output == "map":
        return s.module.scc_map(p, t, config, s.pairing, tangents=tangents, sizes=sizes)
    scores, grads, counted = s.module.scores(
        p, t, config, s.pairing, gradients=tuple(x is not None for x in tangents), sizes=sizes
    )
    n = p.shape[0]
    d = sum(jnp.sum((g * x).reshape(n, -1), axis=1) for g, x in zip(grads, tangents) if x is not None)
    has_data = counted > 0
    return scores, jnp.where(has_data, d / jnp.where(has_data, counted, 1), 0)


@functools.partial(jax.jit, static_argnames=("config", "output"))
def evaluate(p: jax.Array, t: jax.Array, config: Config, output: str, sizes: Optional[jax.Array] = None) -> jax.Array:
    """The SCC map or per-sample scores of 4-D inputs (see the strategies),
    differentiable by the rule above in forward and reverse mode, to any order.

    With ``sizes`` (``int32 (N, 2)``, ``config.extents``), each sample is an
    image of that height and width in the top-left of its canvas: the canvas
    is first reflected at each image's own border
    (:func:`~jax_scc._src.extents.reflect_at_extents`, differentiated by
    JAX), and the strategies leave out what lies outside it."""
    if sizes is not None:
        p, t = (extents.reflect_at_extents(x, sizes, config) for x in (p, t))
    return _scc(p, t, sizes, config, output)
