"""How the definition is executed: the one place that asks which backend runs.

Two strategies compute the same numbers (the same definition, the same
arithmetic; only the order of a few float32 additions may differ):

* :mod:`~jax_scc._src.execution.chunked` (CPU): the batch walked in
  cache-sized chunks (whole samples, planes, or bands of rows) with fusion
  barriers;
* :mod:`~jax_scc._src.execution.whole` (GPU, TPU): one graph for the batch.

``method`` chooses how the window moments pair their blocks: ``"slices"``
(shifted slices) or ``"conv"`` (dilated 2-tap depthwise ``lax.conv``).
``"auto"`` picks by backend, as measured in ``benchmarks/``: slices on CPU
(chunked) and on GPU (whole graph; 1.2-4.9x faster than conv on an H200),
conv on other backends (TPU: not measured; its convolutions run on the matrix
units). ``"slices"`` and ``"conv"`` run chunked on CPU, as one graph elsewhere.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax

from jax_scc._src.config import Config
from jax_scc._src.execution import chunked, whole


class Strategy(NamedTuple):
    """A resolved way to run the definition."""

    name: str  # "chunked" or "whole"
    pairing: str  # "slices" or "conv"

    @property
    def evaluate(self) -> Callable:
        return chunked.evaluate if self.name == "chunked" else whole.evaluate


def strategy(config: Config, backend: str | None = None) -> Strategy:
    """The strategy for ``config`` on ``backend`` (default: JAX's default backend)."""
    backend = backend or jax.default_backend()
    pairing = config.method
    if pairing == "auto":
        pairing = "slices" if backend in ("cpu", "gpu") else "conv"
    return Strategy("chunked" if backend == "cpu" else "whole", pairing)


@functools.partial(jax.jit, static_argnames=("config", "output"))
def evaluate(p: jax.Array, t: jax.Array, config: Config, output: str) -> jax.Array:
    """The SCC map or per-sample scores of 4-D inputs (see the strategies)."""
    s = strategy(config)
    return s.evaluate(p, t, config, output, s.pairing)
