"""CPU strategy: walk the batch in cache-sized chunks, with fusion barriers.

XLA's CPU code generator is fastest when the intermediates of the definition
(high-passed rows, the five window statistics of every doubling step) stay in
cache, and it recomputes a producer once per use inside a fusion. So the batch
is walked in chunks of about ``_CHUNK_PIXELS`` pixels with a ``fori_loop``
(a loop XLA keeps), and :func:`~jax_scc._src.execution.fusion.materialise`
stops the recomputation. A chunk is, by the size of a sample:

* several whole samples (small images);
* one image plane (one channel of one sample);
* a band of rows of one plane, with the halo rows the filter and the window
  need (large planes, e.g. 8192 x 8192 remote-sensing tiles): every shape is
  scored in a fixed amount of extra memory.

Where the chunk count does not divide the batch (or the bands the height),
the last chunk is moved back to end at the last sample (row): it recomputes a
few values already written, and writes the same numbers again.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from jax_scc._src import definition, highpass
from jax_scc._src.config import Config
from jax_scc._src.execution.fusion import materialise
from jax_scc._src.layout import from_nchw, to_nchw

# A chunk holds about this many pixels: its intermediates then stay in cache.
_CHUNK_PIXELS = 1 << 18
# A band has at least this many rows (fewer would spend most time on its halo).
_MIN_BAND_ROWS = 32
# Up to this many doubling steps per window pass are left to XLA to fuse into
# one loop (cheapest for small windows); beyond it each step is materialised,
# which keeps the cost logarithmic in the window size.
_FUSED_DOUBLINGS = 3


class Plan(NamedTuple):
    """How a ``(N, C, H, W)`` batch is walked.

    ``samples`` whole samples per step (``0``: one plane per step); each plane
    in ``bands`` bands of ``rows`` rows (``bands == 1``: whole planes).
    """

    samples: int
    rows: int
    bands: int

    def steps(self, n: int, c: int) -> int:
        if self.samples:
            return -(-n // self.samples)
        return n * c * self.bands


def plan(shape: Tuple[int, int, int, int], config: Config) -> Plan:
    """The walk of an ``(N, C, H, W)`` batch (sizes only; no data)."""
    n, c, h, w_img = shape
    per_sample = c * h * w_img
    if per_sample <= _CHUNK_PIXELS:
        most = min(n, _CHUNK_PIXELS // per_sample)
        divisor = max(d for d in range(1, most + 1) if n % d == 0)
        # A divisor of the batch leaves no overlap; if only small ones exist,
        # balanced chunks (the last one moved back) take fewer steps.
        samples = divisor if 2 * divisor >= most else -(-n // -(-n // most))
        return Plan(samples=samples, rows=h, bands=1)
    rows = max(_MIN_BAND_ROWS, _CHUNK_PIXELS // w_img)
    before, after = definition.halo(config)
    if rows >= h or rows + before + after > h:
        return Plan(samples=0, rows=h, bands=1)
    return Plan(samples=0, rows=rows, bands=-(-h // rows))


def _clamped(i: Any, size: int, total: int) -> Any:
    """Start of chunk ``i`` of ``size`` in ``total``, the last one moved back."""
    return jnp.minimum(i * size, total - size)


class _Chunk(NamedTuple):
    """Where a chunk lies: first sample, first channel, first row (NCHW indices)."""

    n0: Any
    c0: Any
    r0: Any


def _locate(i: Any, p: Plan, shape: Tuple[int, int, int, int]) -> Tuple[_Chunk, Tuple[int, int]]:
    """Chunk ``i``'s position and its ``(samples, channels)`` extent."""
    n, c, h, _ = shape
    if p.samples:
        return _Chunk(_clamped(i, p.samples, n), 0, 0), (p.samples, c)
    plane, band = i // p.bands, i % p.bands
    return _Chunk(plane // c, plane % c, _clamped(band, p.rows, h)), (1, 1)


def _read(x: jax.Array, where: _Chunk, extent: Tuple[int, int], rows: Tuple[Any, int], fmt: str) -> jax.Array:
    """Rows ``[start, start + count)`` of the chunk's planes, as NCHW."""
    start, count = rows
    s, c = extent
    if fmt == "NCHW":
        idx, size = (where.n0, where.c0, start, 0), (s, c, count, x.shape[3])
    else:
        idx, size = (where.n0, start, 0, where.c0), (s, count, x.shape[2], c)
    return to_nchw(lax.dynamic_slice(x, idx, size), fmt)


def _band(
    p: jax.Array,
    t: jax.Array,
    sigmas: Optional[Tuple[jax.Array, jax.Array]],
    where: _Chunk,
    extent: Tuple[int, int],
    pl: Plan,
    config: Config,
) -> definition.Band:
    """The chunk's :class:`~jax_scc._src.definition.Band` (NCHW)."""
    fmt = config.data_format
    h = p.shape[1] if fmt == "NHWC" else p.shape[2]
    if pl.bands == 1:
        pc = _read(p, where, extent, (0, h), fmt)
        tc = _read(t, where, extent, (0, h), fmt)
        return definition.whole_planes(pc, tc, config)
    # A band: read the contiguous rows around it, then pick its rows (with the
    # symmetric reflection at the image's top and bottom) from those.
    before, after = definition.halo(config)
    count = pl.rows + before + after
    first = where.r0 - before
    lo = jnp.clip(first, 0, h - count)
    wanted = first + jnp.arange(count)
    wanted = jnp.where(wanted < 0, -wanted - 1, wanted)
    wanted = jnp.where(wanted >= h, 2 * h - 1 - wanted, wanted)
    local = jnp.clip(wanted - lo, 0, count - 1)
    pc = jnp.take(_read(p, where, extent, (lo, count), fmt), local, axis=2)
    tc = jnp.take(_read(t, where, extent, (lo, count), fmt), local, axis=2)
    inside = definition.inside_rows(where.r0, pl.rows, h, config.window_size)
    sigma_p, sigma_t = (
        None if s is None else lax.dynamic_slice(s, (where.n0, where.c0, 0, 0), (1, 1, 1, 1))
        for s in sigmas
    )
    return definition.Band(pc, tc, inside, sigma_p, sigma_t)


def _plane_sigmas(p: jax.Array, t: jax.Array, pl: Plan, config: Config):
    """Grid scales of the exact high-pass for every plane, ``(N, C, 1, 1)``
    each, found band by band (a plane is too large to be read at once)."""
    fmt = config.data_format
    shape = to_nchw(p, fmt).shape
    n, c, h, _ = shape

    def body(i, peaks):
        where, extent = _locate(i, pl, shape)
        rows = (where.r0, pl.rows)
        band_peaks = [highpass.finite_peak(_read(x, where, extent, rows, fmt)) for x in (p, t)]
        idx = (where.n0, where.c0, 0, 0)
        return tuple(
            lax.dynamic_update_slice(a, jnp.maximum(lax.dynamic_slice(a, idx, (1, 1, 1, 1)), b), idx)
            for a, b in zip(peaks, band_peaks)
        )

    zeros = jnp.zeros((n, c, 1, 1), p.dtype)
    peaks = lax.fori_loop(0, pl.steps(n, c), body, (zeros, zeros))
    hp_filter = highpass.normalised(config.hp_filter)
    return tuple(highpass.grid_scale(x, hp_filter) for x in peaks)


def evaluate(p: jax.Array, t: jax.Array, config: Config, output: str, pairing: str) -> jax.Array:
    """The SCC map (``output="map"``, layout of the input) or the per-sample
    scores (``"scores"``, shape ``(N,)``) of 4-D inputs, chunk by chunk."""
    fmt = config.data_format
    shape = to_nchw(p, fmt).shape
    n, c, h, w_img = shape
    pl = plan(shape, config)
    steps = pl.steps(n, c)
    sigmas = _plane_sigmas(p, t, pl, config) if pl.bands > 1 else None
    stage_steps = (config.window_size.bit_length() - 1) > _FUSED_DOUBLINGS

    def chunk_map(i):
        where, extent = _locate(i, pl, shape)
        band = _band(p, t, sigmas, where, extent, pl, config)
        pixels = definition.band_map(
            band, config, pairing=pairing, stage=materialise, stage_steps=stage_steps
        )
        return where, pixels

    if output == "map":

        def write_map(i, out):
            where, pixels = chunk_map(i)
            m = from_nchw(definition.map_with_gaps(pixels), fmt)
            idx = (where.n0, where.c0, where.r0, 0) if fmt == "NCHW" else (where.n0, where.r0, 0, where.c0)
            return lax.dynamic_update_slice(out, m, idx)

        if steps == 1:
            return write_map(0, jnp.zeros_like(p))
        return lax.fori_loop(0, steps, write_map, jnp.zeros_like(p))

    def write_rows(i, acc):
        where, pixels = chunk_map(i)
        rows = definition.row_stats(pixels)
        idx = (where.n0, where.c0, where.r0)
        return jax.tree.map(lambda a, r: lax.dynamic_update_slice(a, r, idx), acc, rows)

    zeros = jnp.zeros((n, c, h), p.dtype)
    init = definition.RowStats(zeros, zeros if config.masked else None)
    rows = write_rows(0, init) if steps == 1 else lax.fori_loop(0, steps, write_rows, init)
    return definition.scores(rows)
