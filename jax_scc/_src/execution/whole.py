"""Whole-graph strategy: the definition on the whole batch as one XLA graph.

Used off CPU (GPU, TPU), where a sequential loop over chunks would leave the
device idle: XLA fuses and schedules the whole computation itself.

With ``pairing="direct"`` and windows up to :data:`WINDOW_2D_UP_TO`, the
batch runs in the formulation written for fusing compilers
(:func:`~jax_scc._src.definition.planes_map`): one pass for the exact
high-pass, one pass that forms every window from its ``w * w`` values and
ends in the ratio and the reduction (XLA for an H200: 24 bytes per pixel and
2 inputs' worth of temporaries, ``benchmarks/accel_compile.py``), and an
analytic derivative of the same shape. Other pairings (and larger windows)
run the band definition on the whole planes, with the band's derivative rule
(:func:`~jax_scc._src.definition.band_gradient`, as on CPU).
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
from jax import lax

from jax_scc._src import definition
from jax_scc._src.config import Config
from jax_scc._src.layout import from_nchw, to_nchw

#: Windows up to this size are formed from their ``w * w`` values in one pass
#: (O(w**2) work per pixel, exact to 1e-5 per map pixel at w = 8; the
#: two-level centring loses more above).
WINDOW_2D_UP_TO = 8


def fused(config: Config, pairing: str) -> bool:
    """Whether ``(config, pairing)`` runs in the two-pass formulation (images
    with their own extents in a canvas run the band definition)."""
    return pairing == "direct" and config.window_size <= WINDOW_2D_UP_TO and not config.extents


def scc_map(
    p: jax.Array,
    t: jax.Array,
    config: Config,
    pairing: str,
    tangents: Optional[Tuple[Optional[jax.Array], Optional[jax.Array]]] = None,
    borders: str = "strips",
    window: str = "levels",
    sizes: Optional[jax.Array] = None,
):
    """The SCC map of 4-D inputs (layout of the input; NaN where left out), in
    one graph; with ``tangents`` (of ``p`` and ``t``, ``None`` for zero) also
    its tangent, as a ``jax.checkpoint`` (reverse mode recomputes the
    definition's intermediate results instead of keeping them). ``borders``:
    how the two-pass formulation's high-pass reflects (``"strips"`` for GPU,
    ``"padded"`` for TPU; :func:`~jax_scc._src.highpass.high_pass_local_grid`)
    and its window pass is formed (``"levels"`` for GPU, ``"two_pass"`` for
    TPU; :func:`~jax_scc._src.moments.window_2d`). ``sizes``: each sample's
    image extent (``config.extents``), or ``None``."""
    fmt = config.data_format

    def as_output(pixels):
        return from_nchw(definition.map_with_gaps(pixels), fmt)

    if fused(config, pairing):

        def compute(p, t, dp, dt):
            pixels, planes = definition.planes_map(to_nchw(p, fmt), to_nchw(t, fmt), config, borders, window)
            if tangents is None:
                return pixels, None
            d = tuple(None if x is None else to_nchw(x, fmt) for x in (dp, dt))
            return pixels, definition.planes_map_tangent(planes, d, config)

    else:

        def compute(p, t, dp, dt):
            band = definition.whole_planes(to_nchw(p, fmt), to_nchw(t, fmt), config, sizes)
            d = None
            if tangents is not None:
                d = definition.Tangents(
                    *(None if x is None else definition.extend_rows(to_nchw(x, fmt), config) for x in (dp, dt))
                )
            return definition.band_map(band, config, tangents=d, pairing=pairing)

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
    borders: str = "strips",
    window: str = "levels",
    sizes: Optional[jax.Array] = None,
):
    """Per-sample scores of 4-D inputs, shape ``(N,)``, in one graph; and for
    each input with ``gradients`` True, the gradient of the sum of each
    sample's counted map pixels (see :func:`~jax_scc._src.execution.chunked.scores`).
    ``borders``, ``window`` and ``sizes`` as in :func:`scc_map`."""
    fmt = config.data_format
    shape = to_nchw(p, fmt).shape
    if fused(config, pairing):
        pixels, planes = definition.planes_map(to_nchw(p, fmt), to_nchw(t, fmt), config, borders, window)
        rows = definition.row_stats(pixels)
        grads = (None, None)
        if any(gradients):
            # The window pass ends here, its statistics in memory: with the
            # several uses below as its consumers, XLA would split it in pieces
            # (98 inputs' worth of temporaries on (64, 1, 256, 256) for an H200).
            # XLA for GPU and TPU keeps an optimization barrier (XLA for CPU,
            # where this strategy only runs in tests, drops it).
            planes = planes._replace(window=lax.optimization_barrier(planes.window))
            fields = definition.gradient_fields(planes, pixels.keep, config, gradients)
            grads = definition.counted_sum_gradient(planes, fields, config)
        grads = tuple(None if g is None else from_nchw(g, fmt) for g in grads)
        return definition.scores(rows), grads, definition.counted(rows, shape)

    band = definition.whole_planes(to_nchw(p, fmt), to_nchw(t, fmt), config, sizes)
    if not any(gradients):
        pixels, _ = definition.band_map(band, config, pairing=pairing)
        rows = definition.row_stats(pixels)
        return definition.scores(rows), (None, None), definition.counted(rows, shape)
    pixels, g_rows = definition.band_gradient(band, config, gradients, pairing=pairing)
    rows = definition.row_stats(pixels)
    grads = [None, None]
    for k, x in enumerate((p, t)):
        if gradients[k]:
            # The band's rows are the planes with their halo rows (reflected).
            _, rows_transpose = jax.vjp(lambda x: definition.extend_rows(x, config), to_nchw(x, fmt))
            grads[k] = from_nchw(rows_transpose(g_rows[k])[0], fmt)
    return definition.scores(rows), tuple(grads), definition.counted(rows, shape)
