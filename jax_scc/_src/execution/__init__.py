"""How the definition is executed: the one place that chooses a strategy per platform.

Two strategies compute the same numbers (the same definition; only the order
of a few float32 additions may differ):

* :mod:`~jax_scc._src.execution.chunked` (CPU): the batch walked in
  cache-sized chunks (whole samples, planes, or bands of rows);
* :mod:`~jax_scc._src.execution.whole` (GPU, TPU): one graph for the batch.

``method`` chooses how the window moments are formed: ``"slices"`` (blocks
paired by shifted slices, O(log w) doubling steps), ``"conv"`` (the same pairs
by dilated 2-tap depthwise ``lax.conv``) or ``"direct"`` (every window's
values at once: O(w) per pass on CPU; on GPU/TPU, for windows up to 8 x 8,
the two-pass formulation of :func:`~jax_scc._src.definition.planes_map`).
``"auto"`` picks per platform, from ``benchmarks/``: on CPU direct up to
``_DIRECT_UP_TO`` and slices above (measured); on GPU and TPU direct up to
:data:`~jax_scc._src.execution.whole.WINDOW_2D_UP_TO` and slices above (from
the accelerator compilers' own figures, ``benchmarks/accel_compile.py``:
24 bytes/px on an H200 against 330 for slices).

The platform is the one the program is *compiled for*, not
``jax.default_backend()``: every strategy is staged out with
``lax.platform_dependent`` and the lowering keeps the one for its platform,
so an ahead-of-time compile for a GPU or TPU (also from a CPU-only process,
and ``jax.export`` for several platforms) carries each platform's own program.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jax_scc._src.config import Config
from jax_scc._src.execution import chunked, whole


# On CPU, windows up to this size are formed directly: as fast as the doubling
# tree or faster (benchmarks/results/cpu.md, window table), and exact to float32
# rounding on 2 x 2 windows of quantized images, where the tree is not.
_DIRECT_UP_TO = 5

# The platforms lax.platform_dependent tells apart; others get the GPU/TPU strategy.
_PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


class Strategy(NamedTuple):
    """A resolved way to run the definition."""

    name: str  # "chunked" or "whole"
    pairing: str  # "slices", "conv" or "direct"

    @property
    def module(self):
        return chunked if self.name == "chunked" else whole


def strategy(config: Config, platform: str) -> Strategy:
    """The strategy for ``config`` on ``platform`` (``"cpu"``, ``"cuda"``,
    ``"rocm"``, ``"tpu"``; ``"gpu"`` stands for both GPU platforms)."""
    pairing = config.method
    if platform == "cpu":
        if pairing == "auto":
            pairing = "direct" if config.window_size <= _DIRECT_UP_TO else "slices"
        return Strategy("chunked", pairing)
    if pairing == "auto":
        pairing = "direct" if config.window_size <= whole.WINDOW_2D_UP_TO else "slices"
    return Strategy("whole", pairing)


def _per_platform(config: Config, run: Callable[[Strategy], Callable], *args):
    """``run(strategy)(*args)`` with each platform's strategy, staged out by
    ``lax.platform_dependent`` (platforms that share a strategy share a branch)."""
    branches, by_strategy = {}, {}
    for platform in _PLATFORMS:
        s = strategy(config, platform)
        if s not in by_strategy:
            by_strategy[s] = run(s)
        branches[platform] = by_strategy[s]
    return lax.platform_dependent(*args, default=branches["cuda"], **branches)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _scc(p: jax.Array, t: jax.Array, config: Config, output: str) -> jax.Array:
    def run(s: Strategy):
        if output == "map":
            return lambda p, t: s.module.scc_map(p, t, config, s.pairing)
        return lambda p, t: s.module.scores(p, t, config, s.pairing)[0]

    return _per_platform(config, run, p, t)


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
    p, t = primals
    tangents = tuple(None if type(x) is SymbolicZero else x for x in tangents)
    if output == "map":
        run_map = lambda s: lambda p, t, d: s.module.scc_map(p, t, config, s.pairing, tangents=d)  # noqa: E731
        return _per_platform(config, run_map, p, t, tangents)
    wanted = tuple(x is not None for x in tangents)
    run_scores = lambda s: lambda p, t: s.module.scores(p, t, config, s.pairing, gradients=wanted)  # noqa: E731
    scores, grads, counted = _per_platform(config, run_scores, p, t)
    n = p.shape[0]
    d = sum(jnp.sum((g * x).reshape(n, -1), axis=1) for g, x in zip(grads, tangents) if x is not None)
    has_data = counted > 0
    return scores, jnp.where(has_data, d / jnp.where(has_data, counted, 1), 0)


@functools.partial(jax.jit, static_argnames=("config", "output"))
def evaluate(p: jax.Array, t: jax.Array, config: Config, output: str) -> jax.Array:
    """The SCC map or per-sample scores of 4-D inputs (see the strategies),
    differentiable by the rule above in forward and reverse mode, to any order."""
    return _scc(p, t, config, output)
