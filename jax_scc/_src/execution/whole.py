"""Whole-graph strategy: the definition on the whole batch as one XLA graph.

Used off CPU (GPU, TPU), where a sequential loop over chunks would leave the
device idle: XLA fuses and schedules the whole computation itself.
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax

from jax_scc._src import definition
from jax_scc._src.config import Config
from jax_scc._src.layout import from_nchw, to_nchw


def scc_map(
    p: jax.Array,
    t: jax.Array,
    config: Config,
    pairing: str,
    tangents: Optional[Tuple[Optional[jax.Array], Optional[jax.Array]]] = None,
    sizes: Optional[jax.Array] = None,
):
    """The SCC map of 4-D inputs (layout of the input; NaN where left out), in
    one graph; with ``tangents`` (of ``p`` and ``t``, ``None`` for zero) also
    its tangent, as a ``jax.checkpoint`` (reverse mode recomputes the
    definition's intermediate results instead of keeping them). ``sizes``:
    each sample's image extent (``config.extents``), or ``None``."""
    fmt = config.data_format

    def compute(p, t, dp, dt):
        band = definition.whole_planes(to_nchw(p, fmt), to_nchw(t, fmt), config, sizes)
        d = None
        if tangents is not None:
            d = definition.Tangents(
                *(None if x is None else definition.extend_rows(to_nchw(x, fmt), config) for x in (dp, dt))
            )
        return definition.band_map(band, config, tangents=d, pairing=pairing)

    def as_output(pixels):
        return from_nchw(definition.map_with_gaps(pixels), fmt)

    if tangents is None:
        return as_output(compute(p, t, None, None)[0])
    pixels, d_map = jax.checkpoint(compute)(p, t, *tangents)
    return jax.jvp(lambda m: as_output(pixels._replace(map=m)), (pixels.map,), (d_map,))


def scores(
    p: jax.Array,
    t: jax.Array,
    config: Config,
    pairing: str,
    gradients: Tuple[bool, bool] = (False, False),
    sizes: Optional[jax.Array] = None,
):
    """Per-sample scores of 4-D inputs, shape ``(N,)``, in one graph; and for
    each input with ``gradients`` True, the gradient of the sum of each
    sample's counted map pixels (see :func:`~jax_scc._src.execution.chunked.scores`)."""
    fmt = config.data_format
    wanted = [i for i, g in enumerate(gradients) if g]

    def counted(*diff):
        inputs = [p, t]
        for k, x in zip(wanted, diff):
            inputs[k] = x
        band = definition.whole_planes(*(to_nchw(x, fmt) for x in inputs), config, sizes)
        pixels, _ = definition.band_map(band, config, pairing=pairing)
        return definition.counted_sum(pixels), definition.row_stats(pixels)

    total, vjp, rows = jax.vjp(counted, *[(p, t)[k] for k in wanted], has_aux=True)
    grads = [None, None]
    for k, g in zip(wanted, vjp(jax.numpy.ones_like(total))):
        grads[k] = g
    return definition.scores(rows), tuple(grads), definition.counted(rows, to_nchw(p, fmt).shape)
