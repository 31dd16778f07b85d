"""Whole-graph strategy: the definition on the whole batch as one XLA graph.

Used off CPU (GPU, TPU), where a sequential loop over chunks would leave the
device idle and every fusion barrier would synchronise with the host: XLA
fuses and schedules the whole computation itself.
"""

from __future__ import annotations

import jax

from jax_scc._src import definition
from jax_scc._src.config import Config
from jax_scc._src.layout import from_nchw, to_nchw


def evaluate(p: jax.Array, t: jax.Array, config: Config, output: str, pairing: str) -> jax.Array:
    """The SCC map (``output="map"``, layout of the input) or the per-sample
    scores (``"scores"``, shape ``(N,)``) of 4-D inputs, in one graph."""
    fmt = config.data_format
    pixels = definition.scc_map_planes(to_nchw(p, fmt), to_nchw(t, fmt), config, pairing=pairing)
    if output == "map":
        return from_nchw(definition.map_with_gaps(pixels), fmt)
    return definition.scores(definition.row_stats(pixels))
