"""Windowed moments of SCC: local means, variances and covariance over ``w x w`` windows.

Two properties matter for SCC and are kept here:

* **O(log w) cost.** A window sum of width ``w`` is assembled from blocks of
  widths 1, 2, 4, ... (each the merge of two neighbouring blocks of half the
  width) following the binary decomposition of ``w``, separably along W then H.
  Only shifted slices are involved, so a NaN reaches only the windows that
  contain it.
* **No cancellation.** ``E[x^2] - E[x]^2`` in float32 loses every digit when a
  window's values are nearly equal (and turns exact zeros of variance into
  noise that the SCC ratio amplifies to O(1)). Each block instead carries its
  sum and its *centred* second moments, merged with Chan et al.'s pairwise
  update ``M = M_a + M_b + delta_a * delta_b * n_a n_b / (n_a + n_b)``, which
  adds only non-negative terms for variances. The result equals
  ``E[x^2] - E[x]^2`` (zero padding counted as values, as in the definition)
  to a few ulps of the variance itself.
"""

from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
from jax import lax



def window_padding(w: int) -> Tuple[int, int]:
    """Zero padding (before, after) of a window of size ``w``."""
    return w // 2, (w - 1) // 2  # ceil((w-1)/2), floor((w-1)/2)


class _Block(NamedTuple):
    """Statistics of blocks of padded pixels (one block per position).

    ``mp``/``mt`` are means and ``mpp``/``mtt``/``mpt`` centred co-moment sums
    (``None`` stands for exact zeros). Means rather than sums are carried so
    that no merge subtracts two products: XLA may contract ``a*b - c*d`` into a
    fused multiply-add, which would leave residues where two blocks are equal.
    """

    mp: jax.Array
    mt: jax.Array
    mpp: Optional[jax.Array]
    mtt: Optional[jax.Array]
    mpt: Optional[jax.Array]


def _add(a: Optional[jax.Array], b: Optional[jax.Array]) -> Optional[jax.Array]:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _slice(blk: _Block, start: int, size: int, axis: int) -> _Block:
    return _Block(
        *(None if x is None else lax.slice_in_dim(x, start, start + size, axis=axis) for x in blk)
    )


def _merge(a: _Block, b: _Block, na: int, nb: int) -> _Block:
    """Pairwise merge of blocks holding ``na`` and ``nb`` pixels (Chan et al.)."""
    dtype = a.mp.dtype
    dp, dt = b.mp - a.mp, b.mt - a.mt  # exactly 0 where the blocks agree
    if na == nb:
        mp = (a.mp + b.mp) * jnp.asarray(0.5, dtype)
        mt = (a.mt + b.mt) * jnp.asarray(0.5, dtype)
    else:
        frac = jnp.asarray(nb / (na + nb), dtype)
        mp, mt = a.mp + dp * frac, a.mt + dt * frac
    weight = jnp.asarray(na * nb / (na + nb), dtype)
    wdp = dp * weight
    return _Block(
        mp=mp,
        mt=mt,
        mpp=_add(_add(a.mpp, b.mpp), wdp * dp),
        mtt=_add(_add(a.mtt, b.mtt), (dt * weight) * dt),
        mpt=_add(_add(a.mpt, b.mpt), wdp * dt),
    )


def _scale(x: Optional[jax.Array], factor: Any) -> Optional[jax.Array]:
    return None if x is None else x * factor


def _sub(a: Optional[jax.Array], b: Optional[jax.Array]) -> Optional[jax.Array]:
    if b is None:
        return a
    return -b if a is None else a - b


def _merge_tangent(a: _Block, b: _Block, da: _Block, db: _Block, na: int, nb: int) -> _Block:
    """The tangent of :func:`_merge` (blocks ``a``, ``b``; their tangents ``da``, ``db``).

    With ``delta = mean_b - mean_a`` and ``w = na nb / (na + nb)``, the merged
    co-moment ``M_xy = M_a + M_b + w delta_x delta_y`` has the tangent
    ``dM_a + dM_b + w (d delta_x delta_y + delta_x d delta_y)``: centred at
    every level, like the moments themselves, so that near-flat windows (where
    the level of the values dwarfs their spread) keep their digits. ``None``
    fields are exact zeros (e.g. the target's, for a gradient in ``preds`` only).
    """
    dtype = a.mp.dtype
    dp, dt = b.mp - a.mp, b.mt - a.mt
    ddp, ddt = _sub(db.mp, da.mp), _sub(db.mt, da.mt)
    if na == nb:
        half = jnp.asarray(0.5, dtype)
        mp, mt = _scale(_add(da.mp, db.mp), half), _scale(_add(da.mt, db.mt), half)
    else:
        frac = jnp.asarray(nb / (na + nb), dtype)
        mp, mt = _add(da.mp, _scale(ddp, frac)), _add(da.mt, _scale(ddt, frac))
    weight = jnp.asarray(na * nb / (na + nb), dtype)
    two_weight = jnp.asarray(2 * na * nb / (na + nb), dtype)
    cross = _add(_scale(ddp, dt), _scale(ddt, dp))
    return _Block(
        mp=mp,
        mt=mt,
        mpp=_add(_add(da.mpp, db.mpp), _scale(_scale(ddp, dp), two_weight)),
        mtt=_add(_add(da.mtt, db.mtt), _scale(_scale(ddt, dt), two_weight)),
        mpt=_add(_add(da.mpt, db.mpt), _scale(cross, weight)),
    )


def _double_slices(cur: _Block, width: int, axis: int, unit: int) -> _Block:
    """Merges each block with the one ``width`` positions later, by shifted slices."""
    length = cur.mp.shape[axis] - width
    merged = _merge(
        _slice(cur, 0, length, axis),
        _slice(cur, width, length, axis),
        width * unit,
        width * unit,
    )
    return merged


def _two_tap(x: jax.Array, taps: Tuple[float, ...], width: int, axis: int) -> jax.Array:
    """Depthwise ``lax.conv`` of every leading slice of ``x`` with 1-D kernels of 2 taps.

    Output channel ``j`` of each input is ``taps[2j] * x[i] + taps[2j+1] * x[i + width]``
    along ``axis`` (a kernel of 2 taps dilated by ``width``, VALID padding).
    Returns shape ``(len(taps) // 2, *x.shape with axis shortened by width)``.
    """
    mult = len(taps) // 2
    lead = x.shape[: x.ndim - 2]
    h, w = x.shape[-2], x.shape[-1]
    planes = x.reshape((-1, 1, h, w))  # (B, 1, H, W): one feature per image
    if axis == x.ndim - 1:
        kernel_shape, dilation = (mult, 1, 1, 2), (1, width)
    else:
        kernel_shape, dilation = (mult, 1, 2, 1), (width, 1)
    kernel = jnp.asarray(taps, x.dtype).reshape(kernel_shape)
    out = lax.conv_general_dilated(
        planes,
        kernel,
        window_strides=(1, 1),
        padding="VALID",
        rhs_dilation=dilation,
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        precision=lax.Precision.HIGHEST,
    )
    out = jnp.moveaxis(out, 1, 0)  # (mult, B, H', W')
    return out.reshape((mult,) + lead + out.shape[-2:])


def _double_conv(cur: _Block, width: int, axis: int, unit: int) -> _Block:
    """The same merge as :func:`_double_slices`, with the pairs formed by ``lax.conv``.

    Means and differences of each pair come from one depthwise convolution
    with the dilated 2-tap kernels ``(1/2, 1/2)`` and ``(-1, 1)``; co-moment
    sums from ``(1, 1)``. Each output is a single exact-or-once-rounded
    operation, so the result is the slice path's to the last bit up to the
    order of one addition.
    """
    dtype = cur.mp.dtype
    n = width * unit
    weight = jnp.asarray(n / 2, dtype)  # n * n / (n + n)
    mp_mean, dp = _two_tap(cur.mp, (0.5, 0.5, -1.0, 1.0), width, axis)
    mt_mean, dt = _two_tap(cur.mt, (0.5, 0.5, -1.0, 1.0), width, axis)

    def sums(m: Optional[jax.Array]) -> Optional[jax.Array]:
        return None if m is None else _two_tap(m, (1.0, 1.0), width, axis)[0]

    wdp = dp * weight
    return _Block(
        mp=mp_mean,
        mt=mt_mean,
        mpp=_add(sums(cur.mpp), wdp * dp),
        mtt=_add(sums(cur.mtt), (dt * weight) * dt),
        mpt=_add(sums(cur.mpt), wdp * dt),
    )


def _pad(blk: _Block, widths) -> _Block:
    return _Block(*(None if x is None else jnp.pad(x, widths) for x in blk))


def _window_1d(
    blocks: Tuple[_Block, Optional[_Block]],
    w: int,
    axis: int,
    unit: int,
    double: Callable[[_Block, int, int, int], _Block],
    padded: bool,
) -> Tuple[_Block, Optional[_Block]]:
    """Merges ``w`` consecutive blocks along ``axis``; with their tangents, if given.

    ``blocks`` is ``(block, tangent)``, ``tangent`` being ``None`` for none.
    ``unit`` is the pixel count of each input block. Output position ``i``
    covers input positions ``i - ceil((w-1)/2) ... i + floor((w-1)/2)``, the
    input zero padded ("same" output); with ``padded`` the input already holds
    the ``w - 1`` halo positions and the output is ``w - 1`` shorter ("valid").
    ``double`` merges every block with the one ``width`` positions later
    (tangents always pair by shifted slices).
    """
    if w == 1:
        return blocks
    blk, tan = blocks
    if padded:
        n = blk.mp.shape[axis] - (w - 1)
    else:
        n = blk.mp.shape[axis]
        widths = [(0, 0)] * blk.mp.ndim
        widths[axis] = window_padding(w)
        blk, tan = _pad(blk, widths), None if tan is None else _pad(tan, widths)

    def cut(x: Optional[_Block], start: int, size: int) -> Optional[_Block]:
        return None if x is None else _slice(x, start, size, axis)

    def merge(a, b, na, nb):
        merged = _merge(a[0], b[0], na, nb)
        return merged, None if tan is None else _merge_tangent(a[0], b[0], a[1], b[1], na, nb)

    cur = (blk, tan)
    width, offset, out, out_width = 1, 0, None, 0
    remaining = w
    while remaining:
        if remaining & 1:
            part = (cut(cur[0], offset, n), cut(cur[1], offset, n))
            out = part if out is None else merge(out, part, out_width * unit, width * unit)
            offset += width
            out_width += width
        remaining >>= 1
        if remaining:
            length = cur[0].mp.shape[axis] - width
            if tan is None:
                cur = (double(cur[0], width, axis, unit), None)
            else:
                first = (cut(cur[0], 0, length), cut(cur[1], 0, length))
                second = (cut(cur[0], width, length), cut(cur[1], width, length))
                cur = merge(first, second, width * unit, width * unit)
            width *= 2
    return out


class Moments(NamedTuple):
    """Windowed statistics of two images, each of shape ``(..., H, W)``.

    ``mp``/``mt`` are the window means; ``vp``/``vt`` the variances
    ``E[x^2]-E[x]^2`` (>= 0) and ``cov`` the covariance ``E[pt]-E[p]E[t]``.
    """

    mp: jax.Array
    mt: jax.Array
    vp: jax.Array
    vt: jax.Array
    cov: jax.Array


def _direct_rows(p: jax.Array, t: jax.Array, w: int, padded: bool = False):
    """The row pass of the direct formulation: each ``w``-wide row segment's
    statistics from its ``w`` values, centred on the segment's own centre pixel.
    With ``padded`` the rows already hold the window's ``w - 1`` halo columns.

    Returns ``(cp, dp, ct, dt, mpp, mtt, mpt)``: the centre values ``c``, the
    mean's offset from them ``d`` (so the mean is ``c + d``, never rounded
    into one number) and the centred co-moment sums.
    """
    axis = p.ndim - 1
    if padded:
        n = p.shape[axis] - (w - 1)
        pp, tp = p, t
    else:
        n = p.shape[axis]
        widths = [(0, 0)] * p.ndim
        widths[axis] = window_padding(w)
        pp, tp = jnp.pad(p, widths), jnp.pad(t, widths)
    cut = lambda x, k: lax.slice_in_dim(x, k, k + n, axis=axis)  # noqa: E731
    before = window_padding(w)[0]
    p, t = cut(pp, before), cut(tp, before)
    # Deviations from the centre pixel: exact where the values are close.
    devs_p = [cut(pp, k) - p for k in range(w)]
    devs_t = [cut(tp, k) - t for k in range(w)]
    inv = jnp.asarray(1.0 / w, p.dtype)
    dp, dt = sum(devs_p[1:], devs_p[0]) * inv, sum(devs_t[1:], devs_t[0]) * inv
    ep, et = [x - dp for x in devs_p], [x - dt for x in devs_t]
    mpp = sum(x * x for x in ep)
    mtt = sum(x * x for x in et)
    mpt = sum(a * b for a, b in zip(ep, et))
    return p, dp, t, dt, mpp, mtt, mpt


def _direct_columns(rows, w: int, rows_padded: bool):
    """The column pass of the direct formulation: merges ``w`` row segments
    (each of ``w`` pixels) around each output row, centred on the centre row's
    centre pixel; the segments' own centred sums add up, plus ``w`` times the
    spread of their means (each mean kept as centre + offset)."""
    cp, dp, ct, dt, mpp, mtt, mpt = rows
    axis = cp.ndim - 2
    if rows_padded:
        n = cp.shape[axis] - (w - 1)
    else:
        n = cp.shape[axis]
        widths = [(0, 0)] * cp.ndim
        widths[axis] = window_padding(w)
        cp, dp, ct, dt, mpp, mtt, mpt = (jnp.pad(x, widths) for x in rows)
    before = window_padding(w)[0]
    cut = lambda x, k: lax.slice_in_dim(x, k, k + n, axis=axis)  # noqa: E731
    centre_p, centre_t = cut(cp, before), cut(ct, before)
    # Each segment's mean, relative to the window's centre pixel.
    means_p = [(cut(cp, k) - centre_p) + cut(dp, k) for k in range(w)]
    means_t = [(cut(ct, k) - centre_t) + cut(dt, k) for k in range(w)]
    inv = jnp.asarray(1.0 / w, cp.dtype)
    off_p, off_t = sum(means_p[1:], means_p[0]) * inv, sum(means_t[1:], means_t[0]) * inv
    ep, et = [x - off_p for x in means_p], [x - off_t for x in means_t]
    weight = jnp.asarray(float(w), cp.dtype)
    total = lambda x: sum(cut(x, k) for k in range(w))  # noqa: E731
    m_pp = total(mpp) + weight * sum(x * x for x in ep)
    m_tt = total(mtt) + weight * sum(x * x for x in et)
    m_pt = total(mpt) + weight * sum(a * b for a, b in zip(ep, et))
    return centre_p + off_p, centre_t + off_t, m_pp, m_tt, m_pt


def local_moments(
    p: jax.Array,
    t: jax.Array,
    w: int,
    *,
    tangents: Optional[Tuple[Optional[jax.Array], Optional[jax.Array]]] = None,
    pairing: str = "slices",
    rows_padded: bool = False,
    columns_padded: bool = False,
):
    """Local means, variances and covariance over zero-padded ``w x w`` windows.

    Args:
      p: high-passed predictions, shape ``(..., H, W)``, float32 or float64.
      t: high-passed targets, same shape and dtype.
      w: window size, ``1 <= w <= min(H, W)``.
      tangents: tangents of ``p`` and ``t`` (``None`` for zero), for the
        tangents of the moments (see :func:`_merge_tangent`).
      pairing: ``"slices"`` forms the pairs of each doubling step from shifted
        slices; ``"conv"`` from dilated 2-tap depthwise ``lax.conv`` kernels;
        ``"direct"`` takes every window's ``w`` values per pass at once
        (:func:`_direct_rows`, :func:`_direct_columns`: O(w) arithmetic, but
        one read of each input per pass, for accelerators). The same numbers
        to float32 rounding (tangents: slices).
      rows_padded: the rows already hold the window's ``w - 1`` halo rows
        (zeros outside the image): the output has ``w - 1`` fewer rows.
      columns_padded: the columns hold their zero padding (ceil((w-1)/2)
        before, floor((w-1)/2) after), given by the caller: a strategy that
        keeps it in memory with the high-passed rows, instead of a padded
        copy made for the pass.

    Returns:
      :class:`Moments`, each of shape ``(..., H, W)`` (``w - 1`` fewer rows
      with ``rows_padded``, columns with ``columns_padded``), with the zero
      padding ceil((w-1)/2) before and floor((w-1)/2) after counted as pixels. With ``tangents``, a pair: the
      moments and their tangents (a :class:`Moments`, ``None`` for exact zeros).
    """
    if w == 1:
        # A single pixel has no spread (and no halo); NaN/Inf still propagate.
        zeros = (p - p) + (t - t)
        out = Moments(p, t, zeros, zeros, zeros)
        if tangents is None:
            return out
        return out, Moments(*tangents, None, None, None)
    if tangents is not None:
        pairing = "slices"
    inv = jnp.asarray(1.0 / (w * w), p.dtype)
    if pairing == "direct":
        mp, mt, mpp, mtt, mpt = _direct_columns(_direct_rows(p, t, w, columns_padded), w, rows_padded)
        return Moments(mp, mt, mpp * inv, mtt * inv, mpt * inv)
    double = _double_conv if pairing == "conv" else _double_slices
    leaves = _Block(p, t, None, None, None)
    tan = None if tangents is None else _Block(*tangents, None, None, None)
    rows = _window_1d((leaves, tan), w, p.ndim - 1, 1, double, columns_padded)
    win, d_win = _window_1d(rows, w, p.ndim - 2, w, double, rows_padded)
    out = Moments(win.mp, win.mt, win.mpp * inv, win.mtt * inv, win.mpt * inv)
    if tangents is None:
        return out
    return out, Moments(d_win.mp, d_win.mt, _scale(d_win.mpp, inv), _scale(d_win.mtt, inv), _scale(d_win.mpt, inv))


class CentredWindow(NamedTuple):
    """Windowed statistics kept relative to each window's centre pixel, ``(..., H, W)`` each.

    The window means are ``centre + offset`` (``p + dp``, ``t + dt``, never
    rounded into one number), and ``vp``/``vt``/``cov`` the variances and
    covariance as in :class:`Moments`. The derivative of SCC
    (:func:`jax_scc._src.definition.counted_sum_gradient`) is formed from
    deviations from the centre pixels too.
    """

    dp: jax.Array
    dt: jax.Array
    vp: jax.Array
    vt: jax.Array
    cov: jax.Array

    def moments(self, p: jax.Array, t: jax.Array) -> Moments:
        return Moments(p + self.dp, t + self.dt, self.vp, self.vt, self.cov)


def _views(xp: jax.Array, w: int) -> List[List[jax.Array]]:
    """The ``w x w`` "valid" shifted views of ``xp`` (``(..., H + w - 1, W + w - 1)``)."""
    h, wd = xp.shape[-2] - (w - 1), xp.shape[-1] - (w - 1)
    return [[xp[..., a : a + h, b : b + wd] for b in range(w)] for a in range(w)]


def window_taps(x: jax.Array, w: int, before: int, after: int) -> List[List[jax.Array]]:
    """The ``w x w`` shifted views of ``x`` (``(..., H, W)``, zero padded by
    ``before``/``after`` on both spatial axes): ``taps[a][b]`` holds, at each
    pixel, the value ``a`` rows and ``b`` columns past its window's first corner."""
    return _views(jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(before, after)] * 2), w)


def _one_pass(devs_p, devs_t, n: int):
    """``(offset_p, offset_t, M_pp, M_tt, M_pt)`` of ``n`` values given as
    deviations from one of them (absent entries are that one's own, 0): the
    centred sums ``sum (e - mean(e))**2 = sum e**2 - sum(e) * mean(e)``. One
    reference value inside the set bounds the cancellation: ``sum e**2`` is at
    most ``n + 1`` times the result."""
    sp, st = sum(devs_p[1:], devs_p[0]), sum(devs_t[1:], devs_t[0])
    inv = jnp.asarray(1.0 / n, sp.dtype)
    dp, dt = sp * inv, st * inv
    spp = sum(e * e for e in devs_p)
    stt = sum(e * e for e in devs_t)
    spt = sum(a * b for a, b in zip(devs_p, devs_t))
    return dp, dt, spp - sp * dp, stt - st * dt, spt - sp * dt


def window_2d(p: jax.Array, t: jax.Array, w: int, form: str = "levels") -> CentredWindow:
    """Windowed moments over zero-padded ``w x w`` windows, every window from its
    ``w * w`` values at once (one fusible pass: no intermediate arrays).

    Two levels, each centred on a value of its own set, so that no sum of
    squares exceeds ``w + 1`` times what it is reduced to (a single level over
    ``w * w`` deviations from the window's centre would allow ``w * w + 1``,
    and loses up to 6e-5 of the SCC map on quantized photographs at w = 8):

    1. each row segment of the window (``w`` values): deviations from the
       segment's own value in the centre column, one-pass centred sums;
    2. the ``w`` segments: their means as deviations from the window's centre
       pixel, one-pass again, plus the segments' own sums (Chan et al.'s
       merge of ``w`` equal-sized sets).

    ``form="rows"`` is ``"levels"`` with every row's segments formed once,
    on whole rows, and each window taking ``w`` of them (for a kernel that
    pays for each shifted copy). ``form="two_pass"`` is the textbook alternative: the mean of the ``w * w``
    deviations from the window's centre pixel first, then the sums of squares
    of the deviations from that mean (each deviation used twice, after a sum
    of all of them: XLA for TPU keeps that in one pass, XLA for GPU writes
    every deviation to memory; the two levels are the other way round). The
    two-pass form is the more exact.

    The work is O(w * w) per pixel (meant for w <= 8, as on accelerators; the
    doubling tree of :func:`local_moments` is O(log w)). Against the float64
    definition: within 6e-6 per map pixel at w = 8 on quantized photographs.

    Args:
      p, t: high-passed images, shape ``(..., H, W)``, float32 or float64,
        ``1 <= w <= min(H, W)``.
      w: the window size.
      form: ``"levels"``, ``"rows"`` (the same numbers) or ``"two_pass"`` (the
        same to float32 rounding).

    Returns:
      :class:`CentredWindow`, each ``(..., H, W)``, with the window's zero
      padding (ceil((w-1)/2) before, floor((w-1)/2) after) counted as pixels.
    """
    widths = [(0, 0)] * (p.ndim - 2) + [window_padding(w)] * 2
    return window_2d_padded(jnp.pad(p, widths), jnp.pad(t, widths), w, form)


def window_2d_padded(pp: jax.Array, tp: jax.Array, w: int, form: str = "levels") -> CentredWindow:
    """:func:`window_2d` of high-passed images given with their window padding
    (``(..., H + w - 1, W + w - 1)``, ceil((w-1)/2) before and floor((w-1)/2)
    after on both axes: zeros, or whatever the caller's window reads there),
    "valid": ``(..., H, W)`` each. For callers that hold the padded images
    already (a kernel's tile with its halo)."""
    if w == 1:  # one value per window: no variance, but a NaN in either input spoils it
        zeros = (pp - pp) + (tp - tp)
        return CentredWindow(zeros, zeros, zeros, zeros, zeros)
    before, _ = window_padding(w)
    if form != "rows":
        taps_p, taps_t = _views(pp, w), _views(tp, w)
    if form == "two_pass":
        p, t = taps_p[before][before], taps_t[before][before]
        devs_p = [x - p for row in taps_p for x in row]
        devs_t = [x - t for row in taps_t for x in row]
        inv = jnp.asarray(1.0 / (w * w), p.dtype)
        dp, dt = sum(devs_p[1:], devs_p[0]) * inv, sum(devs_t[1:], devs_t[0]) * inv
        ep, et = [x - dp for x in devs_p], [x - dt for x in devs_t]
        return CentredWindow(
            dp, dt, sum(x * x for x in ep) * inv, sum(x * x for x in et) * inv, sum(a * b for a, b in zip(ep, et)) * inv
        )

    def segment(row_p: List[jax.Array], row_t: List[jax.Array]):  # the w values of a row segment
        cp, ct = row_p[before], row_t[before]
        devs_p = [x - cp for b, x in enumerate(row_p) if b != before]
        devs_t = [x - ct for b, x in enumerate(row_t) if b != before]
        return (cp, ct) + _one_pass(devs_p, devs_t, w)

    if form == "rows":
        # Every row's segments once, on the padded rows, then each window's w
        # of them: the same numbers as "levels", with w shifted copies along
        # the rows instead of w * w (a TPU kernel's shifts are its cost).
        h, wd = pp.shape[-2] - (w - 1), pp.shape[-1] - (w - 1)
        shifted = lambda xp: [xp[..., b : b + wd] for b in range(w)]  # noqa: E731
        rows = segment(shifted(pp), shifted(tp))
        segments = [tuple(x[..., a : a + h, :] for x in rows) for a in range(w)]
    else:
        segments = [segment(taps_p[a], taps_t[a]) for a in range(w)]
    centre_p, centre_t = segments[before][0], segments[before][1]
    # Each segment's mean relative to the window's centre pixel.
    means_p = [(cp - centre_p) + dp for cp, _, dp, *_ in segments]
    means_t = [(ct - centre_t) + dt for _, ct, _, dt, *_ in segments]
    dp, dt, bpp, btt, bpt = _one_pass(means_p, means_t, w)
    weight = jnp.asarray(float(w), pp.dtype)
    inv = jnp.asarray(1.0 / (w * w), pp.dtype)

    def total(k: int, between: jax.Array) -> jax.Array:
        return (sum(s[k] for s in segments) + weight * between) * inv

    return CentredWindow(dp, dt, total(4, bpp), total(5, btt), total(6, bpt))


def _window_sums(a: jax.Array, w: int, axis: int) -> jax.Array:
    """Along ``axis``, the sums of ``w`` consecutive values ("valid")."""
    n = a.shape[axis] - (w - 1)
    return sum(lax.slice_in_dim(a, k, k + n, axis=axis) for k in range(w))


def _adjoint_1d(
    terms: Sequence[Tuple[jax.Array, jax.Array, jax.Array, int]], plain: jax.Array, w: int, axis: int
) -> jax.Array:
    """One axis of :func:`sum_over_windows`: at each output position ``i``
    along ``axis``, over the ``w`` windows whose span holds it,
    ``sum_c plain_c + sum_k sign_k weight_k,c * (value_k,i - value_k,c)``.
    The fields are given along ``axis`` at every centre that reaches the
    output (``w - 1`` more positions: position ``k`` is
    ``i - floor((w-1)/2) + k`` of output ``i = 0``), ``terms`` as
    ``(weight, value, value at the outputs, sign)``."""
    n = plain.shape[axis] - (w - 1)
    cut = lambda x, k: lax.slice_in_dim(x, k, k + n, axis=axis)  # noqa: E731

    def term(a, vp, v, sign, k):  # a negative sign turns the deviation round (no negated copy)
        return cut(a, k) * ((v - cut(vp, k)) if sign > 0 else (cut(vp, k) - v))

    # Each deviation is between two values of one row (column), at most w - 1
    # apart: exact where they are close.
    return sum(cut(plain, k) + sum(term(*t, k) for t in terms) for k in range(w))


def sum_over_windows(
    sums: Sequence[Tuple[Sequence[Tuple[Any, ...]], jax.Array]],
    w: int,
    stage: Callable[..., Any] = lambda fn, *args: fn(*args),
    columns_padded: bool = True,
) -> List[jax.Array]:
    """For every pixel ``q`` of ``(..., H, W)`` planes, the sum over the
    ``w x w`` windows ``c`` that contain it of::

        plain_c + sum_k sign_k * weight_k,c * (value_k,q - value_k,c)

    for each ``(weighted, plain)`` of ``sums`` (``weighted``: the
    ``(weight_k, value_k)`` pairs, or ``(weight_k, value_k, -1)`` for a
    negative sign): the transpose of the window (what the derivative of a
    windowed statistic needs), centred. Every field and value is given at
    all the window centres that reach the output, ``w - 1`` more rows and
    columns (``floor((w-1)/2)`` before, ``ceil((w-1)/2)`` after, as the
    windows that hold the output's corner pixels are centred; ``plain`` and
    ``weight_k`` are 0 where there is no window): ``(..., H + w - 1, W + w - 1)``
    in, ``(..., H, W)`` out ("valid": the caller holds the padding, as a
    kernel's tile holds its halo). Several sums are formed in the same
    passes (what they share is read once, a weight they share summed once).

    Formed separably, columns then rows, in O(w) per pixel:
    ``value_q - value_c = (value_q - value_r) + (value_r - value_c)`` through
    the pixel ``r`` in ``q``'s row and ``c``'s column, so that every
    deviation is between two values of one column or one row, close where the
    values are. (``value_q * sum weight - sum weight * value_c`` loses every
    digit where the windows' values are nearly equal: up to 7e-2 of the
    largest gradient of SCC on quantized photographs at w = 3.)

    Args:
      sums: ``(weighted, plain)`` pairs, every array ``(..., H + w - 1, W + w - 1)``.
      w: the window size.
      stage: ``stage(fn, *args)`` computes the column pass (results
        ``(..., H, W + w - 1)``, read by the row pass) as ``fn(*args)``, the
        way an execution strategy wants it (its fusion barrier); as is by default.
      columns_padded: ``False``: the columns are given without the windows'
        (``(..., H + w - 1, W)``: every window centred in them, the
        others' fields 0), and the row pass pads the column pass's results
        (a compiler that fuses pads into their readers moves fewer bytes).

    Returns:
      One ``(..., H, W)`` array per entry of ``sums``.
    """
    if w == 1:
        return [plain for _, plain in sums]
    _, after = window_padding(w)
    rows, cols = sums[0][1].ndim - 2, sums[0][1].ndim - 1
    n, m = sums[0][1].shape[rows] - (w - 1), sums[0][1].shape[cols] - (w - 1 if columns_padded else 0)
    q_rows = lambda x: lax.slice_in_dim(x, after, after + n, axis=rows)  # noqa: E731
    # Each distinct array once (a weight summed once), each term as
    # (weight's index, value's index, sign).
    arrays: List[jax.Array] = []

    def index(x: jax.Array) -> int:
        at = next((i for i, y in enumerate(arrays) if y is x), None)
        if at is None:
            at = len(arrays)
            arrays.append(x)
        return at

    layout = [[(index(pair[0]), index(pair[1]), pair[2] if len(pair) == 3 else 1) for pair in weighted] for weighted, _ in sums]
    weights = sorted({a for terms in layout for a, _, _ in terms})
    plains = [plain for _, plain in sums]

    def column_pass(arrays, plains):  # at (q's row, c's column)
        partials = [
            _adjoint_1d([(arrays[a], arrays[v], q_rows(arrays[v]), sign) for a, v, sign in terms], plain, w, rows)
            for terms, plain in zip(layout, plains)
        ]
        return {a: _window_sums(arrays[a], w, rows) for a in weights}, partials

    column_sums, partials = stage(column_pass, arrays, plains)
    pad = lambda x: x  # noqa: E731
    if not columns_padded:
        pad = lambda x: jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(after, w - 1 - after)])  # noqa: E731
        column_sums, partials = {a: pad(x) for a, x in column_sums.items()}, [pad(x) for x in partials]
    out = []
    for terms, partial in zip(layout, partials):
        row_terms = []
        for a, v, sign in terms:
            at_r = pad(q_rows(arrays[v]))
            row_terms.append((column_sums[a], at_r, lax.slice_in_dim(at_r, after, after + m, axis=cols), sign))
        out.append(_adjoint_1d(row_terms, partial, w, cols))
    return out
