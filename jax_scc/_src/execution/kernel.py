"""TPU strategy: the forward and the loss's gradient as Pallas (Mosaic)
kernels, each input read once.

XLA for TPU keeps no formulation of SCC in one pass: the two-pass window of
:func:`~jax_scc._src.definition.planes_map` is split into pieces on a v5e,
and the band definition moves 500-1,100 bytes per pixel
(``benchmarks/results/accel-compile.md``). These kernels move what the
definition needs and no more: one grid step per image plane (or, for planes
beyond the VMEM budget, per band of its rows), the plane of each input
brought into VMEM once (8 bytes per pixel for the pair; a band also reads a
few rows on either side), and the whole definition computed there, tile by
tile, by the same functions as every other strategy:

1. the plane (band) is copied into a VMEM scratch with the filter's
   symmetric reflection and room for the halos around it (:func:`_fill`);
2. each tile (:data:`TILE`) reads its inputs with their halo from that scratch,
   high-passes them (:func:`~jax_scc._src.highpass.taps_local_grid`: exact,
   an error-free split on a grid per output pixel), zeroes the high-passed
   pixels outside the image (the window's zero padding), and forms the
   windows on two levels, each row's segments once
   (:func:`~jax_scc._src.moments.window_2d_padded`, the ``"rows"`` form) and
   the ratio (:func:`~jax_scc._src.definition.scc_from_moments`);
3. the map's tile goes to the output plane, or is added into per-row
   partial sums (:data:`SUM_LANES` per row) from which the scores are the
   row means, as in the other strategies;
4. for the loss, the same tile also forms the gradient of the plane's map
   sum in its inputs over a wider halo: the rule of
   :func:`~jax_scc._src.definition.band_gradient`, its sums over windows
   separable and centred (:func:`~jax_scc._src.moments.sum_over_windows`),
   the high-pass's transpose
   (:func:`~jax_scc._src.highpass.high_pass_transpose_taps`) and the
   reflection's (:func:`_fold`), and writes it to a gradient plane.

A kernel's cost is its shifted copies of values (the TPU rotates vector
registers through its cross-lane unit), so those forms keep them few, and the
tiles are large: by the v6e compiler's schedule, 0.54 cycles per pixel for
the forward and 1.0 for the value and gradient (``accel_compile.py``,
``cycles/px``).

They cover the plain forward (scores and map) and the scores' gradients in
float32, planes at least :data:`MIN_WIDTH` wide and of any height (in bands
of rows where a plane exceeds the VMEM budget, :func:`vmem_budget`), windows
up to :data:`~jax_scc._src.execution.whole.WINDOW_2D_UP_TO`, and for the
gradient filters that reflect one pixel at most (3 x 3 and smaller);
everything else (masks, image extents, the map's tangent) runs the
whole-graph strategy.
Mosaic compiles them on a machine with no TPU (deviceless,
``benchmarks/accel_compile.py``), and ``interpret=True`` runs them on the CPU,
which is how the tests check them.
"""

from __future__ import annotations

import functools
import math
from typing import List, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from jax_scc._src import definition, highpass, moments
from jax_scc._src.config import Config
from jax_scc._src.highpass import hp_padding
from jax_scc._src.moments import window_padding

# What the kernels use of the Pallas TPU API (an older JAX without it runs the
# whole graph on TPU: see execution._kernels).
pltpu.CompilerParams, pltpu.VMEM, pl.CostEstimate  # noqa: B018

#: A tile of the map and of the gradient (rows, lanes): 4 x 2 vector
#: registers. Each tile recomputes its halo, and each shifted copy of a value
#: costs the TPU's cross-lane unit (its scarce resource here), so large tiles
#: pay off: by the v6e compiler's schedule, 0.54 cycles per pixel for the
#: forward and 1.0 for the value and gradient, against 1.27 and 2.85 in
#: 8 x 128 tiles (``benchmarks/results/accel-compile-kernel.md``).
TILE = (32, 256)
#: Lanes of the per-row partial sums the scores are made from.
SUM_LANES = 128
#: Narrower planes run the whole graph: a plane fills the lanes of its rows
#: (128 a register), and on (256, 3, 32, 32) the kernels would take 10x the
#: cycles of XLA's program, which lays such batches out in its own way.
MIN_WIDTH = 128

#: VMEM the kernel may use (bytes) where the TPU generation is not known (an
#: ahead-of-time compile with no TPU attached): what fits every generation
#: from v5 on (v5p and v7x have 64 MiB per core, v5e and v6e 128 MiB).
#: Planes that need more run in bands of rows.
VMEM_BUDGET = 48 * 2**20


def vmem_budget() -> int:
    """VMEM the kernel may use on the TPU this process runs on (16 MiB less
    than it has, at most 96 MiB: nothing on a v4, whose 16 MiB then go to
    the whole graph), or :data:`VMEM_BUDGET` without one."""
    try:
        capacity = pltpu.get_tpu_info().vmem_capacity_bytes
    except Exception:  # no TPU attached (deviceless compile), or an unknown kind
        return VMEM_BUDGET
    return min(capacity - 16 * 2**20, 96 * 2**20)


def _ceil(a: int, b: int) -> int:
    return -(-a // b) * b


class Job(NamedTuple):
    """What one kernel call computes: ``"map"``, ``"scores"`` (per-row
    partial sums of the map), or ``"gradient"`` (the partial sums and the
    gradient of each plane's map sum in the inputs where ``wanted``)."""

    output: str
    wanted: Tuple[bool, bool] = (False, False)


class _Geometry:
    """Sizes of one plane's work: the bands of rows (one grid step each), the
    tiles, each tile's input with its halo, and the padded scratch the halos
    are read from.

    Per axis, an output tile of ``n`` pixels reads (``k``: the filter's size,
    ``w``: the window's):

    * the map: high-passed pixels ``n + w - 1``, inputs ``n + w - 1 + k - 1``;
    * the gradient in the inputs: the high-pass's transpose reads its
      gradient in ``n + 2 (k - 1)`` high-passed pixels, which read the fields
      of ``n + 2 (k - 1) + w - 1`` windows, whose statistics read
      ``n + 2 (k - 1) + 2 (w - 1)`` high-passed pixels, and so
      ``n + 3 (k - 1) + 2 (w - 1)`` inputs.

    A plane is one band where it fits the VMEM budget, else bands of ``band``
    rows, each with ``margin`` rows before and after it (blocks of their own).
    """

    def __init__(self, h: int, w_img: int, config: Config, job: Job, band: Optional[int] = None):
        kh, kw = len(config.hp_filter), len(config.hp_filter[0])
        w = config.window_size
        (self.hp_top, self.hp_bottom), (self.hp_left, self.hp_right) = hp_padding(kh), hp_padding(kw)
        self.before, self.after = window_padding(w)
        self.h, self.w_img = h, w_img
        # No larger than the plane needs (in whole vector registers).
        self.tile = tile = (min(TILE[0], _ceil(h, 8)), min(TILE[1], _ceil(w_img, 128)))
        self.job = job
        if job.output == "gradient":
            extra = (3 * (kh - 1) + 2 * (w - 1), 3 * (kw - 1) + 2 * (w - 1))
            # Inputs before a tile's first pixel: the filter's reach twice,
            # the window's both ways, and the filter's padding.
            self.top = (kh - 1) + self.after + self.before + self.hp_top
            self.left = (kw - 1) + self.after + self.before + self.hp_left
        else:
            extra = (kh - 1 + w - 1, kw - 1 + w - 1)
            self.top, self.left = self.before + self.hp_top, self.before + self.hp_left
        self.extra, self.below = extra, extra[0] - self.top  # rows a band reads after its own
        self.margin = _ceil(max(self.top, self.below, 1), 8)
        self.halo = (tile[0] + extra[0], tile[1] + extra[1])
        self.cols = _ceil(w_img, tile[1])
        if band is None:
            band = _ceil(h, tile[0])  # the whole plane, or the tallest band that fits
            budget = vmem_budget()
            unit = math.lcm(tile[0], self.margin)  # whole tiles, and whole margin blocks
            while band > unit and self._set_band(band).vmem_bytes() > budget:
                band = _ceil(band, unit) - unit
        self._set_band(band)

    def _set_band(self, band: int) -> "_Geometry":
        self.band = band  # rows of tiles per grid step
        self.bands = -(-self.h // band)
        self.aligned = self.cols == self.w_img and (self.bands > 1 or band == self.h)
        self.scratch = (_ceil(band + self.extra[0], 8), _ceil(self.cols + self.extra[1], 128))
        return self

    def vmem_bytes(self) -> int:
        width = _ceil(self.w_img, 128) * 4
        rows = _ceil(self.h, 8) if self.bands == 1 else self.band
        total = 2 * 2 * rows * width  # the inputs' blocks, double-buffered
        if self.bands > 1:
            total += 2 * 2 * 2 * self.margin * width  # and their margins
        total += 2 * self.scratch[0] * self.scratch[1] * 4
        planes_out = 1 if self.job.output == "map" else sum(self.job.wanted)
        total += planes_out * (2 * rows * width + (0 if self.aligned else self.band * self.cols * 4))
        if self.job.output != "map":
            total += 2 * self.band * SUM_LANES * 4
        return total + 4 * 2**20  # a tile's values and Mosaic's own

    def bottom_bands(self) -> List[int]:
        """The bands whose tiles read rows past the plane's last."""
        return [b for b in range(self.bands) if b * self.band + self.band + self.below > self.h]


def applies(config: Config, shape: Tuple[int, ...], dtype, job: Job) -> bool:
    """Whether the kernel computes ``job`` for NCHW inputs of ``shape`` and ``dtype``."""
    from jax_scc._src.execution.whole import WINDOW_2D_UP_TO

    if config.masked or config.window_size > WINDOW_2D_UP_TO or jnp.dtype(dtype) != jnp.float32:
        return False
    h, w_img = shape[-2:]
    if w_img < MIN_WIDTH:
        return False
    kh, kw = len(config.hp_filter), len(config.hp_filter[0])
    reach = 1 if job.output == "gradient" else min(h, w_img)  # the gradient folds one reflected pixel back
    if max(hp_padding(kh) + hp_padding(kw)) > reach or max(hp_padding(kh)) > h or max(hp_padding(kw)) > w_img:
        return False
    return _Geometry(h, w_img, config, job).vmem_bytes() <= vmem_budget()


def _fill(refs, s_ref, b, g: _Geometry) -> None:
    """Band ``b``'s rows of one input (``refs``: its block, and the blocks of
    rows before and after it where the plane has several bands) into the
    scratch ``s_ref``: at the plane's top and bottom reflected by the
    filter's padding (``d c b a | a b c d``), zeros beyond; the same at its
    left and right."""
    top, left, w_img = g.top, g.left, g.w_img
    cols = slice(left, left + w_img)
    s_ref[...] = jnp.zeros(s_ref.shape, s_ref.dtype)
    s_ref[top : top + (g.h if g.bands == 1 else g.band), cols] = refs[0][...]
    if g.bands > 1:
        s_ref[0:top, cols] = refs[1][g.margin - top : g.margin, :]
        s_ref[top + g.band : top + g.band + g.below, cols] = refs[2][: g.below, :]

    def top_edge():  # row -m is row m - 1
        s_ref[0:top, cols] = jnp.zeros((top, w_img), s_ref.dtype)
        for m in range(1, g.hp_top + 1):
            s_ref[top - m : top - m + 1, cols] = s_ref[top + m - 1 : top + m, cols]

    def bottom_edge(band: int):  # row h - 1 + m is row h - m
        end = top + g.h - band * g.band  # where row h would be
        s_ref[end:, cols] = jnp.zeros((g.scratch[0] - end, w_img), s_ref.dtype)
        for m in range(1, g.hp_bottom + 1):
            s_ref[end - 1 + m : end + m, cols] = s_ref[end - m : end - m + 1, cols]

    if g.bands == 1:
        top_edge()
        bottom_edge(0)
    else:  # the top first: a band can hold both edges
        pl.when(b == 0)(top_edge)
        for band in g.bottom_bands():
            pl.when(b == band)(functools.partial(bottom_edge, band))
    for m in range(1, g.hp_left + 1):
        s_ref[:, left - m : left - m + 1] = s_ref[:, left + m - 1 : left + m]
    for m in range(1, g.hp_right + 1):
        s_ref[:, left + w_img - 1 + m : left + w_img + m] = s_ref[:, left + w_img - m : left + w_img - m + 1]


def _inside(first_row, first_col, shape, g: _Geometry) -> jax.Array:
    """Which pixels of a block of ``shape`` whose first pixel is at
    ``(first_row, first_col)`` of the plane lie in the plane."""
    rows = first_row + lax.broadcasted_iota(jnp.int32, (shape[0], 1), 0)
    cols = first_col + lax.broadcasted_iota(jnp.int32, (1, shape[1]), 1)
    return (rows >= 0) & (rows < g.h) & (cols >= 0) & (cols < g.w_img)


def _windows(xp: jax.Array, xt: jax.Array, first_row, first_col, g: _Geometry, config: Config):
    """High-pass the inputs ``xp``/``xt`` (a block with its halo, first input
    at ``(first_row, first_col)`` less the filter's padding) and form the
    windows of every pixel they reach: ``(hp_p, hp_t, window, scc)``, the
    high-passed block (0 outside the plane: the window's zero padding) and,
    ``w - 1`` smaller, the windows' centred statistics and their SCC."""
    hp_filter = highpass.normalised(config.hp_filter)
    w = config.window_size
    shape = (xp.shape[0] - (len(hp_filter) - 1), xp.shape[1] - (len(hp_filter[0]) - 1))
    inside = _inside(first_row, first_col, shape, g)

    def high_passed(x: jax.Array) -> jax.Array:
        hp = highpass.taps_local_grid(x, hp_filter)
        return jnp.where(inside, hp, jnp.zeros_like(hp))

    hp_p, hp_t = high_passed(xp), high_passed(xt)
    window = moments.window_2d_padded(hp_p, hp_t, w, "rows")
    n = (shape[0] - (w - 1), shape[1] - (w - 1))
    centre = (slice(g.before, g.before + n[0]), slice(g.before, g.before + n[1]))
    return hp_p, hp_t, window, definition.scc_from_moments(window.moments(hp_p[centre], hp_t[centre]))


def _tile_map(xp: jax.Array, xt: jax.Array, r0, c0, g: _Geometry, config: Config) -> jax.Array:
    """The SCC map of the tile whose first pixel is ``(r0, c0)``, :data:`TILE`,
    from its inputs with their halo (``g.halo``, read from the scratch)."""
    return _windows(xp, xt, r0 - g.before, c0 - g.before, g, config)[3]


def _fold(x: jax.Array, first, size: int, before: int, after: int, n: int, axis: int) -> jax.Array:
    """The transpose of the symmetric reflection by one pixel along ``axis``:
    ``x`` holds a gradient at positions ``first - before ... first + n + after - 1``
    of an axis of ``size`` pixels; returns ``n`` from ``first``, with what
    position ``-1`` (``size``) holds added to position ``0`` (``size - 1``)."""
    cut = lambda k: lax.slice_in_dim(x, k, k + n, axis=axis)  # noqa: E731
    out = cut(before)
    if not before and not after:
        return out
    at = first + lax.broadcasted_iota(jnp.int32, out.shape, axis)
    zero = jnp.zeros_like(out)
    if before:  # position -1 lies one before position 0
        out = out + jnp.where(at == 0, cut(0), zero)
    if after:  # position size lies one after position size - 1
        out = out + jnp.where(at == size - 1, cut(before + 1), zero)
    return out


def _tile_gradient(xp: jax.Array, xt: jax.Array, r0, c0, g: _Geometry, config: Config, wanted: Tuple[bool, bool]):
    """For the tile whose first pixel is ``(r0, c0)``: its SCC map, and the
    gradient of the plane's map sum in its pixels of ``preds`` and/or
    ``target`` (where ``wanted``), each :data:`TILE`; from the inputs
    with their halo (``g.halo``). The rule of
    :func:`~jax_scc._src.definition.band_gradient` on the tile's halo (its sums
    over windows separable and centred), then the high-pass's transpose and
    its reflection's."""
    hp_filter = highpass.normalised(config.hp_filter)
    kh, kw = len(hp_filter), len(hp_filter[0])
    w = config.window_size
    # Where the tile's blocks start in the plane: windows c, their pixels s.
    c_row, c_col = r0 - (kh - 1) - g.after, c0 - (kw - 1) - g.after
    hp_p, hp_t, window, scc = _windows(xp, xt, c_row - g.before, c_col - g.before, g, config)
    counted = _inside(c_row, c_col, scc.shape, g)  # map pixels of the plane
    fields = definition.window_fields(window, scc, counted, w * w, wanted)
    s_shape = (scc.shape[0] - (w - 1), scc.shape[1] - (w - 1))
    at_c = (slice(g.before, g.before + scc.shape[0]), slice(g.before, g.before + scc.shape[1]))
    s_inside = _inside(c_row + g.after, c_col + g.after, s_shape, g)

    def gradient(own, other, b, e):
        # Over the windows that hold each s, separable and centred (as on CPU;
        # a negated weight here, not a signed term: that schedules 2% longer).
        (g_hp,) = moments.sum_over_windows([([(fields.a, other[at_c]), (-b, own[at_c])], e)], w)
        g_hp = jnp.where(s_inside, g_hp, jnp.zeros_like(g_hp))  # outside: the window's zero padding
        g_in = highpass.high_pass_transpose_taps(g_hp, hp_filter)  # the tile, and the filter's padding around it
        g_in = _fold(g_in, r0, g.h, g.hp_top, g.hp_bottom, g.tile[0], 0)
        return _fold(g_in, c0, g.w_img, g.hp_left, g.hp_right, g.tile[1], 1)

    own_map = scc[(kh - 1) + g.after : (kh - 1) + g.after + g.tile[0], (kw - 1) + g.after : (kw - 1) + g.after + g.tile[1]]
    g_p = gradient(hp_p, hp_t, fields.b_p, fields.e_p) if wanted[0] else None
    g_t = gradient(hp_t, hp_p, fields.b_t, fields.e_t) if wanted[1] else None
    return own_map, g_p, g_t


# Operations that cost one vector operation per element (what the cost estimate counts).
_ARITHMETIC = {
    "add", "sub", "mul", "div", "max", "min", "abs", "neg", "sqrt", "select_n", "and", "or", "not",
    "eq", "ne", "lt", "le", "gt", "ge", "convert_element_type", "bitcast_convert_type",
}


def flops_per_pixel(config: Config, job: Job = Job("scores")) -> float:
    """Element operations per pixel of one tile's computation (the kernel's
    compute, which the compiler's cost analysis does not see): counted on the
    traced tile function, halo included."""
    return _flops_per_pixel(config, job, TILE)


@functools.lru_cache(maxsize=None)
def _flops_per_pixel(config: Config, job: Job, tile: Tuple[int, int]) -> float:  # traced once per kind of tile
    g = _Geometry(*tile, config, job, band=tile[0])  # one tile's plane: the tile's own work
    x = jax.ShapeDtypeStruct(g.halo, jnp.float32)
    if job.output == "gradient":
        tile = lambda a, b: _tile_gradient(a, b, 0, 0, g, config, job.wanted)  # noqa: E731
    else:
        tile = lambda a, b: _tile_map(a, b, 0, 0, g, config)  # noqa: E731
    count = 0
    for eqn in jax.make_jaxpr(tile)(x, x).eqns:
        if eqn.primitive.name in _ARITHMETIC:
            count += math.prod(eqn.outvars[0].aval.shape)
    return count / (g.tile[0] * g.tile[1])


def _kernel(*refs, g: _Geometry, config: Config, job: Job):
    """One band of one plane. ``refs``: the inputs' blocks (``preds``,
    ``target``, then where the plane has several bands the rows before and
    after the band of each), the outputs (the map, or the partial sums and
    the wanted gradients), the scratch (the two padded inputs, then the
    outputs' tiles where they are not a whole number of tiles)."""
    b = pl.program_id(2)
    inputs, refs = (refs[:6], refs[6:]) if g.bands > 1 else (refs[:2], refs[2:])
    planes_out = 1 if job.output == "map" else sum(job.wanted)
    outs = refs[: len(refs) - 2 - (0 if g.aligned else planes_out)]
    sp_ref, st_ref, *tiled = refs[len(outs) :]
    sums_ref, planes = (None, outs) if job.output == "map" else (outs[0], outs[1:])
    targets = planes if g.aligned else tiled  # where the tiles of the output planes are written
    if g.bands > 1:
        _fill((inputs[0], inputs[2], inputs[3]), sp_ref, b, g)
        _fill((inputs[1], inputs[4], inputs[5]), st_ref, b, g)
    else:
        _fill(inputs[:1], sp_ref, b, g)
        _fill(inputs[1:], st_ref, b, g)
    tile_shape = g.tile
    in_rows = lax.broadcasted_iota(jnp.int32, tile_shape, 0)
    in_cols = lax.broadcasted_iota(jnp.int32, tile_shape, 1)

    def row_of_tiles(i, carry):
        r = pl.multiple_of(i * tile_shape[0], tile_shape[0])  # in the band
        r0 = b * g.band + r  # in the plane

        def tile(j, total):
            c0 = pl.multiple_of(j * tile_shape[1], tile_shape[1])
            halo = (pl.ds(r, g.halo[0]), pl.ds(c0, g.halo[1]))
            if job.output == "gradient":
                scc, *grads = _tile_gradient(sp_ref[halo], st_ref[halo], r0, c0, g, config, job.wanted)
                grads = [x for x in grads if x is not None]
            else:
                scc = _tile_map(sp_ref[halo], st_ref[halo], r0, c0, g, config)
                grads = [scc] if job.output == "map" else []
            for ref, value in zip(targets, grads):
                ref[pl.ds(r, tile_shape[0]), pl.ds(c0, tile_shape[1])] = value
            if sums_ref is None:
                return total
            inside = (in_rows + r0 < g.h) & (in_cols + c0 < g.w_img)
            return total + jnp.where(inside, scc, jnp.zeros_like(scc))

        total = lax.fori_loop(0, g.cols // tile_shape[1], tile, jnp.zeros(tile_shape, jnp.float32))
        if sums_ref is not None:
            lanes = [total[:, k : k + SUM_LANES] for k in range(0, tile_shape[1], SUM_LANES)]
            sums_ref[pl.ds(r, tile_shape[0]), :] = sum(lanes[1:], lanes[0])
        return carry

    lax.fori_loop(0, g.band // tile_shape[0], row_of_tiles, 0)
    if not g.aligned:
        rows = g.h if g.bands == 1 else g.band
        for ref, tiles in zip(planes, tiled):
            ref[...] = tiles[:rows, : g.w_img]


def _call(p: jax.Array, t: jax.Array, config: Config, job: Job, interpret: bool) -> List[jax.Array]:
    n, c, h, w_img = p.shape
    g = _Geometry(h, w_img, config, job)
    if g.bands == 1:
        plane = pl.BlockSpec((None, None, h, w_img), lambda i, j, b: (i, j, 0, 0))
        in_specs, operands = [plane, plane], (p, t)
    else:
        plane = pl.BlockSpec((None, None, g.band, w_img), lambda i, j, b: (i, j, b, 0))
        per_band, last = g.band // g.margin, -(-h // g.margin) - 1
        before = pl.BlockSpec((None, None, g.margin, w_img), lambda i, j, b: (i, j, jnp.maximum(b * per_band - 1, 0), 0))
        after = pl.BlockSpec((None, None, g.margin, w_img), lambda i, j, b: (i, j, jnp.minimum((b + 1) * per_band, last), 0))
        in_specs, operands = [plane, plane, before, after, before, after], (p, t, p, p, t, t)
    out_shape, out_specs = [], []
    if job.output != "map":
        out_shape.append(jax.ShapeDtypeStruct((n, c, g.bands * g.band, SUM_LANES), p.dtype))
        out_specs.append(pl.BlockSpec((None, None, g.band, SUM_LANES), lambda i, j, b: (i, j, b, 0)))
    planes_out = 1 if job.output == "map" else sum(job.wanted)
    out_shape += [jax.ShapeDtypeStruct(p.shape, p.dtype)] * planes_out
    out_specs += [plane] * planes_out
    scratch = [pltpu.VMEM(g.scratch, jnp.float32)] * 2
    if not g.aligned:
        scratch += [pltpu.VMEM((g.band, g.cols), jnp.float32)] * planes_out
    tiles = n * c * g.bands * g.band * g.cols
    read = sum(math.prod(s.block_shape[2:]) for s in in_specs) // 2 * 2 * n * c * g.bands  # each input's blocks
    kernel = pl.pallas_call(
        lambda *refs: _kernel(*refs, g=g, config=config, job=job),
        grid=(n, c, g.bands),
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=out_shape,
        scratch_shapes=scratch,
        compiler_params=pltpu.CompilerParams(
            dimension_semantics=("parallel", "parallel", "parallel"), vmem_limit_bytes=g.vmem_bytes() + 8 * 2**20
        ),
        cost_estimate=pl.CostEstimate(
            flops=int(flops_per_pixel(config, job) * tiles),
            transcendentals=2 * tiles * (1 if job.output != "gradient" else 3),  # the square roots
            bytes_accessed=(read + sum(math.prod(x.shape) for x in out_shape)) * 4,
        ),
        interpret=interpret,
    )
    return kernel(*operands)


def _row_means(partial: jax.Array, h: int, w_img: int) -> definition.RowStats:
    return definition.RowStats(jnp.sum(partial[..., :h, :], axis=-1) / jnp.asarray(w_img, partial.dtype), None)


def scc_map(p: jax.Array, t: jax.Array, config: Config, interpret: bool = False) -> jax.Array:
    """The SCC map of NCHW float32 planes ``(N, C, H, W)`` (see :func:`applies`)."""
    return _call(p, t, config, Job("map"), interpret)[0]


def row_means(p: jax.Array, t: jax.Array, config: Config, interpret: bool = False) -> definition.RowStats:
    """The mean of each row of the SCC map of NCHW float32 planes, ``(N, C, H)``
    (see :func:`applies`): :func:`~jax_scc._src.definition.scores` turns them
    into the per-sample scores."""
    return _row_means(_call(p, t, config, Job("scores"), interpret)[0], *p.shape[-2:])


def row_means_and_gradients(
    p: jax.Array, t: jax.Array, config: Config, wanted: Tuple[bool, bool], interpret: bool = False
) -> Tuple[definition.RowStats, Tuple[Optional[jax.Array], Optional[jax.Array]]]:
    """:func:`row_means`, and the gradient of the sum of each plane's map in
    ``p`` and/or ``t`` (where ``wanted``), ``(N, C, H, W)`` each (``None``
    where not wanted), in one pass."""
    partial, *grads = _call(p, t, config, Job("gradient", wanted), interpret)
    given = iter(grads)
    return _row_means(partial, *p.shape[-2:]), tuple(next(given) if x else None for x in wanted)
