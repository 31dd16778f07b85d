"""CPU strategy: walk the batch in cache-sized chunks, each in stages.

XLA's CPU code generator is fastest when the intermediates of the definition
(high-passed rows, the five window statistics of every doubling step) stay in
cache, and what several passes read is computed as a stage of its own
(:func:`~jax_scc._src.execution.fusion.stage`): each chunk's high-passed rows
before the windows read them (:meth:`_Walk.pixels`), and for the loss also
the window statistics, the gradient's fields and the first pass of their
sums over windows, held with the zero padding their readers need
(:func:`~jax_scc._src.definition.band_gradient` with ``padded``). So the
batch is walked in chunks of about ``_CHUNK_PIXELS`` pixels with a
``fori_loop`` (a loop XLA keeps). A chunk is, by the size of a sample:

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

from typing import Any, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from jax_scc._src import definition, highpass
from jax_scc._src.config import Config
from jax_scc._src.execution.fusion import stage
from jax_scc._src.layout import from_nchw, to_nchw

# A chunk holds about this many pixels: its intermediates then stay in cache.
_CHUNK_PIXELS = 1 << 18
# A band has at least this many rows (fewer would spend most time on its halo).
_MIN_BAND_ROWS = 32


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
    """Where a chunk lies: first sample, first channel, first row (NCHW
    indices); its ``(samples, channels)`` extent; and the first of its rows
    that no earlier chunk computed (``fresh``)."""

    n0: Any
    c0: Any
    r0: Any
    extent: Tuple[int, int]
    fresh: Any


def _locate(i: Any, p: Plan, shape: Tuple[int, int, int, int]) -> _Chunk:
    """Chunk ``i`` of the walk ``p`` of an ``(N, C, H, W)`` batch."""
    n, c, h, _ = shape
    if p.samples:
        return _Chunk(_clamped(i, p.samples, n), 0, 0, (p.samples, c), 0)
    plane, band = i // p.bands, i % p.bands
    return _Chunk(plane // c, plane % c, _clamped(band, p.rows, h), (1, 1), band * p.rows)


def _read(x: jax.Array, chunk: _Chunk, start: Any, count: int, fmt: str) -> jax.Array:
    """Rows ``[start, start + count)`` of the chunk's planes of ``x``, as NCHW."""
    s, c = chunk.extent
    if fmt == "NCHW":
        idx, size = (chunk.n0, chunk.c0, start, 0), (s, c, count, x.shape[3])
    else:
        idx, size = (chunk.n0, start, 0, chunk.c0), (s, count, x.shape[2], c)
    return to_nchw(lax.dynamic_slice(x, idx, size), fmt)


def _index(chunk: _Chunk, row: Any, fmt: str) -> Tuple[Any, ...]:
    """Where the chunk's NCHW rows starting at ``row`` go in an array of layout ``fmt``."""
    if fmt == "NCHW":
        return (chunk.n0, chunk.c0, row, 0)
    return (chunk.n0, row, 0, chunk.c0)


class _Walk(NamedTuple):
    """A batch, its walk, and what every chunk needs."""

    shape: Tuple[int, int, int, int]  # NCHW
    plan: Plan
    sigmas: Tuple[Optional[jax.Array], Optional[jax.Array]]  # per plane, for bands
    config: Config
    pairing: str
    sizes: Optional[jax.Array] = None  # int32 (N, 2): each image's extent (config.extents)

    @property
    def steps(self) -> int:
        return self.plan.steps(*self.shape[:2])

    def slab(self, chunk: _Chunk) -> Tuple[Any, int]:
        """``(first row, row count)`` of the input rows the chunk reads: whole
        planes, or its band and halo (moved inside the image at the top and
        bottom, where the halo is the image's reflection)."""
        h = self.shape[2]
        if self.plan.bands == 1:
            return 0, h
        before, after = definition.halo(self.config)
        count = self.plan.rows + before + after
        return jnp.clip(chunk.r0 - before, 0, h - count), count

    def rows(self, chunk: _Chunk, lo: Any, x: jax.Array) -> jax.Array:
        """The chunk's band rows (:class:`~jax_scc._src.definition.Band`) of a
        slab of ``x`` read from row ``lo`` (:meth:`slab`)."""
        if self.plan.bands == 1:
            return definition.extend_rows(x, self.config)
        h, count = self.shape[2], x.shape[2]
        before, _ = definition.halo(self.config)
        wanted = chunk.r0 - before + jnp.arange(count)
        wanted = jnp.where(wanted < 0, -wanted - 1, wanted)  # symmetric reflection
        wanted = jnp.where(wanted >= h, 2 * h - 1 - wanted, wanted)
        return jnp.take(x, jnp.clip(wanted - lo, 0, count - 1), axis=2)

    def rows_transpose(self, chunk: _Chunk, lo: Any, g: jax.Array, x: jax.Array) -> jax.Array:
        """The transpose of :meth:`rows` (a linear map of the slab ``x``): a
        cotangent of the band's rows to one of the slab."""
        if self.plan.bands == 1:
            return definition.extend_rows_transpose(g, self.config)
        _, transpose = jax.vjp(lambda x: self.rows(chunk, lo, x), x)
        return transpose(g)[0]

    def band(self, chunk: _Chunk, lo: Any, slabs: Sequence[Optional[jax.Array]]):
        """The chunk's :class:`~jax_scc._src.definition.Band` from the slabs of
        ``(preds, target)``, and the same rows of further slabs (tangents;
        ``None`` stays ``None``)."""
        extents = None
        if self.sizes is not None:  # the chunk's samples' rows of sizes
            extents = lax.dynamic_slice(self.sizes, (chunk.n0, 0), (chunk.extent[0], 2))
        if self.plan.bands == 1:
            band = definition.whole_planes(slabs[0], slabs[1], self.config, extents)
            return band, [None if x is None else self.rows(chunk, lo, x) for x in slabs[2:]]
        rows = [None if x is None else self.rows(chunk, lo, x) for x in slabs]
        inside = definition.inside_rows(chunk.r0, self.plan.rows, self.shape[2], self.config.window_size, extents, self.shape[3])
        sigma_p, sigma_t = (lax.dynamic_slice(s, (chunk.n0, chunk.c0, 0, 0), (1, 1, 1, 1)) for s in self.sigmas)
        return definition.Band(rows[0], rows[1], inside, sigma_p, sigma_t), rows[2:]

    def pixels(self, band: definition.Band, tangents=None):
        """The map of a band (and its tangent). Without tangents the high-passed
        rows are a stage of their own (:func:`stage`) before the windows read
        them: XLA would otherwise fuse the high-pass into the window passes
        and evaluate it once per window tap."""
        if tangents is not None:
            return definition.band_map(band, self.config, tangents=tangents, pairing=self.pairing)
        hp = definition.high_pass(band, self.config)
        # (A copy: the windows' row pass pads them; padded in the stage
        # instead, as the loss's are, measured 5-8% slower on banded planes
        # and 8-10% faster on small ones.)
        rows = stage(lambda *x: x, hp.preds, hp.target)
        return definition.window_map(hp._replace(preds=rows[0], target=rows[1]), self.config, self.pairing)

    def run(self, body, init):
        return body(0, init) if self.steps == 1 else lax.fori_loop(0, self.steps, body, init)


def _plane_sigmas(p: jax.Array, t: jax.Array, pl: Plan, config: Config):
    """Grids of the exact high-pass for every plane, ``(N, C, 1, 1)`` each,
    found band by band (a plane is too large to be read at once)."""
    fmt = config.data_format
    shape = to_nchw(p, fmt).shape
    n, c = shape[:2]

    def body(i, peaks):
        chunk = _locate(i, pl, shape)
        band_peaks = [highpass.finite_peak(_read(x, chunk, chunk.r0, pl.rows, fmt)) for x in (p, t)]
        idx = (chunk.n0, chunk.c0, 0, 0)
        return tuple(
            lax.dynamic_update_slice(a, jnp.maximum(lax.dynamic_slice(a, idx, (1, 1, 1, 1)), b), idx)
            for a, b in zip(peaks, band_peaks)
        )

    zeros = jnp.zeros((n, c, 1, 1), p.dtype)
    peaks = lax.fori_loop(0, pl.steps(n, c), body, (zeros, zeros))
    hp_filter = highpass.normalised(config.hp_filter)
    return tuple(highpass.grid_scale(x, hp_filter) for x in peaks)


def _walk(p: jax.Array, config: Config, pairing: str, t: jax.Array, sizes: Optional[jax.Array] = None) -> _Walk:
    shape = to_nchw(p, config.data_format).shape
    pl = plan(shape, config)
    sigmas = _plane_sigmas(p, t, pl, config) if pl.bands > 1 else (None, None)
    return _Walk(shape, pl, sigmas, config, pairing, sizes)


def scc_map(
    p: jax.Array,
    t: jax.Array,
    config: Config,
    pairing: str,
    tangents: Optional[Tuple[Optional[jax.Array], Optional[jax.Array]]] = None,
    sizes: Optional[jax.Array] = None,
):
    """The SCC map of 4-D inputs (layout of the input; NaN where left out),
    chunk by chunk; with ``tangents`` (of ``p`` and ``t``, ``None`` for zero)
    also its tangent, in the same walk. ``sizes``: each sample's image extent
    (``config.extents``), or ``None``.

    With tangents each chunk's computation is a ``jax.checkpoint``: reverse
    mode (JAX transposes the tangent) recomputes it chunk by chunk instead of
    keeping every chunk's intermediate results for the whole batch.
    """
    fmt = config.data_format
    walk = _walk(p, config, pairing, t, sizes)
    inputs = (p, t) if tangents is None else (p, t, *tangents)

    def chunk_map(i):
        chunk = _locate(i, walk.plan, walk.shape)
        lo, count = walk.slab(chunk)
        slabs = [None if x is None else _read(x, chunk, lo, count, fmt) for x in inputs]
        band, tangent_rows = walk.band(chunk, lo, slabs)
        pixels, d_map = walk.pixels(band, None if tangents is None else definition.Tangents(*tangent_rows))
        return chunk, pixels, d_map

    if tangents is not None:
        chunk_map = jax.checkpoint(chunk_map, prevent_cse=False)

    def as_output(pixels):
        return from_nchw(definition.map_with_gaps(pixels), fmt)

    def write(i, outs):
        chunk, pixels, d_map = chunk_map(i)
        idx = _index(chunk, chunk.r0, fmt)
        if d_map is None:
            return lax.dynamic_update_slice(outs, as_output(pixels), idx)
        m, dm = jax.jvp(lambda m: as_output(pixels._replace(map=m)), (pixels.map,), (d_map,))
        return tuple(lax.dynamic_update_slice(o, x, idx) for o, x in zip(outs, (m, dm)))

    init = jnp.zeros_like(p)
    return walk.run(write, init if tangents is None else (init, init))


def scores(
    p: jax.Array,
    t: jax.Array,
    config: Config,
    pairing: str,
    gradients: Tuple[bool, bool] = (False, False),
    sizes: Optional[jax.Array] = None,
):
    """Per-sample scores of 4-D inputs, shape ``(N,)``, chunk by chunk; and
    for each input with ``gradients`` True, the gradient of the sum of each
    sample's counted map pixels (input layout), in the same walk.

    The derivative of the scores is these gradients divided by the number of
    counted pixels. A chunk's gradient is the rule written from the
    definition (:func:`~jax_scc._src.definition.band_gradient`: separable,
    centred, about the cost of the chunk's map), formed while the chunk is in
    cache, in stages wherever several passes read one result; a
    band's gradient reaches into its halo rows, so bands add theirs up.
    """
    fmt = config.data_format
    walk = _walk(p, config, pairing, t, sizes)
    n, c, h, _ = walk.shape
    wanted = [i for i, g in enumerate(gradients) if g]

    def chunk_scores(i, accs):
        rows_acc, grads = accs
        chunk = _locate(i, walk.plan, walk.shape)
        lo, count = walk.slab(chunk)
        slabs = [_read(x, chunk, lo, count, fmt) for x in (p, t)]
        band, _ = walk.band(chunk, lo, slabs)
        idx = (chunk.n0, chunk.c0, chunk.r0)
        if not wanted:
            pixels, _ = walk.pixels(band)
            rows = definition.row_stats(pixels)
            return jax.tree.map(lambda a, r: lax.dynamic_update_slice(a, r, idx), rows_acc, rows), grads
        # The map pixels no earlier chunk summed.
        fresh = (chunk.r0 + jnp.arange(walk.plan.rows) >= chunk.fresh)[None, None, :, None]
        pixels, g_rows = definition.band_gradient(
            band, config, gradients, pairing=pairing, rows=fresh, stage=stage, padded=True
        )
        rows = definition.row_stats(pixels)
        rows_acc = jax.tree.map(lambda a, r: lax.dynamic_update_slice(a, r, idx), rows_acc, rows)
        out, at = [], _index(chunk, lo, fmt)
        for g, k in zip(grads, wanted):
            ct = from_nchw(walk.rows_transpose(chunk, lo, g_rows[k], slabs[k]), fmt)
            if walk.plan.bands > 1:  # overlapping halos: add up
                ct = ct + lax.dynamic_slice(g, at, ct.shape)
            out.append(lax.dynamic_update_slice(g, ct, at))
        return rows_acc, tuple(out)

    zeros = jnp.zeros((n, c, h), p.dtype)
    rows_init = definition.RowStats(zeros, zeros if config.masked else None)
    grads_init = tuple(jnp.zeros_like((p, t)[k]) for k in wanted)
    rows, grads = walk.run(chunk_scores, (rows_init, grads_init))
    full = [None, None]
    for k, g in zip(wanted, grads):
        full[k] = g
    return definition.scores(rows), tuple(full), definition.counted(rows, walk.shape)
