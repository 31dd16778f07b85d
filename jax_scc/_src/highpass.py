"""The high-pass stage of SCC: ``hp(x) = 2 * conv2d(x, hp_filter)``.

A true convolution (the kernel flipped) of the input padded symmetric-reflect
(``d c b a | a b c d``) by floor((k-1)/2) before and ceil((k-1)/2) after. The
filter is static configuration (a tuple of tuples of Python floats), so the
convolution unrolls into one shifted slice per non-zero tap.

SCC does not depend on the filter's scale (both images are filtered, and the
ratio of covariance to standard deviations cancels it), so the filter is first
scaled by a power of two to a largest weight in [1, 2): exact, and it keeps
weights such as 1e30 from overflowing the squares of the window stage.

Float32 accuracy. A naive float32 convolution leaves rounding residues of
~1e-7 where the exact result is 0 (flat regions, symmetric edges of quantized
images); the variance stage turns those into fake structure and moves the SCC
map by up to O(1) per pixel. For filters whose weights are dyadic integers
(every common high-pass filter), we therefore split each pixel exactly into

    x = hi + lo,    hi = (x + sigma) - sigma,

where ``sigma`` is a power of two a few bits above the image's largest finite
magnitude (Rump's error-free extraction). All ``hi`` are multiples of
``ulp(sigma)`` and small enough that ``sum_k w_k * hi_k`` is computed *exactly*
in float32; ``lo`` is tiny (below ``2**-18`` of the image's range), so its
filtered sum carries only a negligible rounding error. The result is the
exact convolution rounded once (exactly 0 where the exact result is 0) for
any image whose values are multiples of ``max|x| * 2**-40`` or so, which covers
8/16-bit, quantized and typical floating-point images. Other filters use the
plain tap sum, formed as ``sum_k w_k (x_k - x_center)`` when the filter sums to
0 so that flat regions still give exact zeros.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from jax_scc._src.config import Filter

_MAX_SCALE_BITS = 8  # weights may be multiples of 2**-8
_MAX_INT_WEIGHT_SUM = 2**10  # sum of |integer weights| kept small vs. the mantissa


def hp_padding(k: int) -> Tuple[int, int]:
    """Symmetric-reflect padding (before, after) of a filter of size ``k``."""
    return (k - 1) // 2, k // 2  # floor((k-1)/2), ceil((k-1)/2)


def reflect_pad(x: jax.Array, before: int, after: int, axis: int) -> jax.Array:
    """Symmetric-reflect padding (``d c b a | a b c d``) along one axis.

    Written as one concatenation of reversed edge slices: XLA's CPU backend
    lowers ``jnp.pad(mode="symmetric")`` into a chain of slice/concatenate
    fusions that cost as much as the filter itself.
    """
    if not (before or after):
        return x
    n = x.shape[axis]
    parts = []
    if before:
        parts.append(lax.rev(lax.slice_in_dim(x, 0, before, axis=axis), (axis,)))
    parts.append(x)
    if after:
        parts.append(lax.rev(lax.slice_in_dim(x, n - after, n, axis=axis), (axis,)))
    return lax.concatenate(parts, axis)


def reflect_pad_transpose(g: jax.Array, before: int, after: int, axis: int) -> jax.Array:
    """The transpose of :func:`reflect_pad` (its derivative): a cotangent of
    the padded axis to one of the unpadded, each reflected position's value
    added to the position it copies. One elementwise pass (the edge values
    selected by position), where autodiff's transpose pads every edge slice
    to the whole axis and adds them up."""
    n = g.shape[axis] - before - after
    out = lax.slice_in_dim(g, before, before + n, axis=axis)
    if not (before or after):
        return out
    at = lax.broadcasted_iota(jnp.int32, out.shape, axis)
    zero = jnp.zeros_like(out)
    edge = lambda k: lax.slice_in_dim(g, k, k + 1, axis=axis)  # noqa: E731
    for j in range(before):  # padded position j holds position before - 1 - j
        out = out + jnp.where(at == before - 1 - j, edge(j), zero)
    for j in range(after):  # padded position before + n + j holds position n - 1 - j
        out = out + jnp.where(at == n - 1 - j, edge(before + n + j), zero)
    return out


def normalised(hp_filter: Filter) -> Filter:
    """``hp_filter`` times the power of two that brings its largest |weight| to [1, 2)."""
    peak = max(abs(v) for row in hp_filter for v in row)
    if peak == 0.0:
        return hp_filter
    shift = -math.floor(math.log2(peak))
    return tuple(tuple(math.ldexp(v, shift) for v in row) for row in hp_filter)


def _taps_by_weight(hp_filter: Filter) -> Dict[float, List[Tuple[int, int]]]:
    """Groups the offsets (into the padded image) of the flipped filter by weight."""
    kh, kw = len(hp_filter), len(hp_filter[0])
    groups: Dict[float, List[Tuple[int, int]]] = defaultdict(list)
    for a in range(kh):
        for b in range(kw):
            # True convolution: the kernel is flipped, so tap (a, b) of the
            # padded window meets filter entry (kh-1-a, kw-1-b).
            weight = hp_filter[kh - 1 - a][kw - 1 - b]
            if weight != 0.0:
                groups[weight].append((a, b))
    return groups


def _dyadic_scale(hp_filter: Filter) -> Optional[int]:
    """Smallest ``s`` with every ``w * 2**s`` a small integer, or None."""
    for s in range(_MAX_SCALE_BITS + 1):
        scaled = [v * 2.0**s for row in hp_filter for v in row]
        if all(float(v).is_integer() for v in scaled) and (
            sum(abs(v) for v in scaled) <= _MAX_INT_WEIGHT_SUM
        ):
            return s
    return None


def _filter_taps(
    xp: jax.Array, hp_filter: Filter, weight_scale: float, part: Optional[Callable[[jax.Array], jax.Array]] = None
) -> jax.Array:
    """``sum_k w_k * part(x_k)`` over the taps of the padded ``xp`` ("valid" output).

    Zero-sum filters are formed as ``sum_k w_k (part(x_k) - part(x_centre))``,
    which is exactly 0 wherever the taps are equal. ``part`` (default: the
    identity) maps each tap, an output-shaped slice of ``xp``, to what is summed.
    """
    kh, kw = len(hp_filter), len(hp_filter[0])
    h, w = xp.shape[-2] - (kh - 1), xp.shape[-1] - (kw - 1)
    a0, b0 = hp_padding(kh)[0], hp_padding(kw)[0]
    zero_sum = math.fsum(v for row in hp_filter for v in row) == 0.0

    def tap(a: int, b: int) -> jax.Array:
        x = xp[..., a : a + h, b : b + w]
        return x if part is None else part(x)

    centre = tap(a0, b0)
    out = None
    for weight, offsets in _taps_by_weight(hp_filter).items():
        if zero_sum:
            # The centre tap's term is (x - x) * w = 0: leave it out.
            terms = [tap(a, b) - centre for (a, b) in offsets if (a, b) != (a0, b0)]
        else:
            terms = [tap(a, b) for (a, b) in offsets]
        if not terms:
            continue
        group = terms[0]
        for t in terms[1:]:
            group = group + t
        weight = weight * weight_scale
        group = group if weight == 1.0 else group * jnp.asarray(weight, xp.dtype)
        out = group if out is None else out + group
    return jnp.zeros_like(centre) if out is None else out


def finite_peak(x: jax.Array, axes: Tuple[int, ...] = (-2, -1)) -> jax.Array:
    """Largest finite ``|x|`` over ``axes`` (kept, of size 1); 0 if there is none."""
    finite_abs = jnp.where(jnp.isfinite(x), jnp.abs(x), jnp.zeros_like(x))
    return jnp.max(finite_abs, axis=axes, keepdims=True)


def grid_scale(peak: jax.Array, hp_filter: Filter) -> Optional[jax.Array]:
    """The grid of the error-free split for images whose largest finite ``|x|`` is ``peak``.

    A power of two ``sigma >= peak * 2**headroom``, where the headroom keeps the
    filtered sum of the grid parts exact. Non-finite pixels play no part, so
    that a NaN only affects the windows that contain it. ``None`` for filters
    that are not small dyadic integers (they use the plain tap sum).
    """
    scale = _dyadic_scale(hp_filter)
    if scale is None:
        return None
    int_sum = sum(abs(v) * 2.0**scale for row in hp_filter for v in row)
    headroom = max(1, math.ceil(math.log2(int_sum + 1)) + 1)
    _, exponent = jnp.frexp(peak)  # peak < 2**exponent
    max_exp = jnp.finfo(peak.dtype).maxexp - 1
    exponent = jnp.minimum(exponent + headroom, max_exp)
    return lax.stop_gradient(jnp.ldexp(jnp.ones_like(peak), exponent))


def high_pass_valid(
    xp: jax.Array, hp_filter: Filter, sigma: Optional[jax.Array]
) -> jax.Array:
    """``2 * conv2d`` of an already padded ``xp`` ("valid": ``k - 1`` shorter per axis).

    Args:
      xp: padded images, shape ``(..., H + kh - 1, W + kw - 1)``.
      hp_filter: the normalised filter (see :func:`normalised`).
      sigma: :func:`grid_scale` of the unpadded images (broadcastable to
        ``xp``), or ``None`` for the plain tap sum.

    Returns:
      Shape ``(..., H, W)``, dtype of ``xp``.
    """
    two = jnp.asarray(2.0, xp.dtype)
    if sigma is None:
        return _filter_taps(xp, hp_filter, 1.0) * two
    scale = _dyadic_scale(hp_filter)
    # Error-free split: hi carries the leading bits on a common grid, lo the rest.
    # The gradient flows through lo (d hi / d x = 0 almost everywhere would be
    # wrong), so hi is treated as a constant and lo as x - hi.
    hi = lax.stop_gradient((xp + sigma) - sigma)
    lo = xp - hi
    exact = _filter_taps(hi, hp_filter, 2.0**scale)  # integer weights: exact
    rest = _filter_taps(lo, hp_filter, 2.0**scale)
    return (exact + rest) * jnp.asarray(2.0 * 2.0**-scale, xp.dtype)


def high_pass_valid_transpose(g: jax.Array, hp_filter: Filter) -> jax.Array:
    """The transpose of :func:`high_pass_valid`'s linear map (its derivative):
    a cotangent of the output ``(..., H, W)`` to one of the padded input
    ``(..., H + kh - 1, W + kw - 1)``, in one pass (the rotated filter over
    the zero-padded cotangent) instead of an array per tap, as autodiff makes
    it. ``hp_filter`` normalised."""
    kh, kw = len(hp_filter), len(hp_filter[0])
    return high_pass_transpose_taps(jnp.pad(g, [(0, 0)] * (g.ndim - 2) + [(kh - 1, kh - 1), (kw - 1, kw - 1)]), hp_filter)


def high_pass_transpose_taps(g: jax.Array, hp_filter: Filter) -> jax.Array:
    """:func:`high_pass_valid_transpose` where ``g`` is given with ``kh - 1``
    rows and ``kw - 1`` columns of the output around the part wanted ("valid":
    ``(..., H + kh - 1, W + kw - 1)`` to ``(..., H, W)`` of the padded input,
    each the sum over every output that reads it). ``hp_filter`` normalised."""
    rotated = tuple(tuple(row[::-1]) for row in hp_filter[::-1])
    return _filter_taps(g, rotated, 2.0)


def high_pass(x: jax.Array, hp_filter: Filter) -> jax.Array:
    """``2 * conv2d(x, hp_filter)`` with symmetric-reflect padding, exact in float32.

    Args:
      x: images of shape ``(..., H, W)``, float32 or float64.
      hp_filter: the filter as a tuple of tuples of floats, shape ``(kh, kw)``.

    Returns:
      The high-passed images, shape ``(..., H, W)``, dtype of ``x``; computed
      with the filter scaled by a power of two (see :func:`normalised`).
    """
    hp_filter = normalised(hp_filter)
    sigma = grid_scale(finite_peak(x), hp_filter)
    return high_pass_valid(pad_for_high_pass(x, hp_filter), hp_filter, sigma)


def pad_for_high_pass(x: jax.Array, hp_filter: Filter, rows: bool = True) -> jax.Array:
    """Symmetric-reflect padding of both axes (or only the columns) for the filter."""
    kh, kw = len(hp_filter), len(hp_filter[0])
    if rows:
        x = reflect_pad(x, *hp_padding(kh), axis=x.ndim - 2)
    return reflect_pad(x, *hp_padding(kw), axis=x.ndim - 1)


def _power_of_two_above(m: jax.Array, bits: int) -> jax.Array:
    """``2**(floor(log2(m)) + bits)`` for positive normal ``m`` (0 for ``m`` 0 or
    subnormal), from the exponent bits: no transcendental functions."""
    int_type = {jnp.dtype(jnp.float32): jnp.int32, jnp.dtype(jnp.float64): jnp.int64}[jnp.dtype(m.dtype)]
    info = jnp.finfo(m.dtype)
    mask = ((1 << (info.nexp)) - 1) << info.nmant
    exponent = lax.bitcast_convert_type(m, int_type) & jnp.asarray(mask, int_type)
    return lax.bitcast_convert_type(exponent, m.dtype) * jnp.asarray(2.0**bits, m.dtype)


def taps_local_grid(xp: jax.Array, hp_filter: Filter) -> jax.Array:
    """``2 * conv2d`` of a padded ``xp`` ("valid"), split error-free on a grid per
    output pixel (see :func:`high_pass_local_grid`); ``hp_filter`` normalised."""
    two = jnp.asarray(2.0, xp.dtype)
    scale = _dyadic_scale(hp_filter)
    if scale is None:
        return _filter_taps(xp, hp_filter, 1.0) * two
    kh, kw = len(hp_filter), len(hp_filter[0])
    h, w = xp.shape[-2] - (kh - 1), xp.shape[-1] - (kw - 1)
    largest = jnp.asarray(jnp.finfo(xp.dtype).max, xp.dtype)
    # Every tap the sums read: the filter's, and the centre, which zero-sum
    # filters subtract from each tap (see _filter_taps).
    taps = {t for offsets in _taps_by_weight(hp_filter).values() for t in offsets}
    taps.add((hp_padding(kh)[0], hp_padding(kw)[0]))
    peak = None
    for (a, b) in sorted(taps):
        v = jnp.abs(xp[..., a : a + h, b : b + w])
        v = jnp.where(v <= largest, v, jnp.zeros_like(v))  # finite only (NaN <= x is False)
        peak = v if peak is None else jnp.maximum(peak, v)
    # The same headroom as grid_scale: sigma = 2**(e + headroom) with peak < 2**e.
    int_sum = sum(abs(v) * 2.0**scale for row in hp_filter for v in row)
    headroom = max(1, math.ceil(math.log2(int_sum + 1)) + 1)
    sigma = lax.stop_gradient(_power_of_two_above(peak, headroom + 1))

    def grid_part(v: jax.Array) -> jax.Array:
        return lax.stop_gradient((v + sigma) - sigma)

    exact = _filter_taps(xp, hp_filter, 2.0**scale, grid_part)
    rest = _filter_taps(xp, hp_filter, 2.0**scale, lambda v: v - grid_part(v))
    return (exact + rest) * jnp.asarray(2.0 * 2.0**-scale, xp.dtype)


def high_pass_local_grid(x: jax.Array, hp_filter: Filter, borders: str = "strips") -> jax.Array:
    """:func:`high_pass` in one pass over ``x``: the error-free split on a grid
    chosen per output pixel, and the reflection handled at the borders only.

    * Each output takes its grid ``sigma`` from the largest finite ``|x|``
      among its own taps (instead of the whole plane's, which needs a pass over
      the plane first): every tap of that output is split on the same grid, so
      its sum of grid parts is exact as before, and the result is the exact
      convolution rounded about once, exactly 0 where that is 0, for every
      image that :func:`high_pass` computes exactly (a smaller local peak only
      makes the grid finer).
    * ``borders="strips"``: the interior reads ``x`` zero padded, which a
      fusing compiler (XLA on GPU) folds into the filter's reads; the few
      border rows and columns that the symmetric reflection reaches are
      computed from thin reflected strips and put in place by a select. No
      padded copy of the image. ``borders="padded"`` reads a reflected copy
      (:func:`pad_for_high_pass`), for compilers that lay thin strips out
      badly (TPU: tiles of 8 x 128).

    Args:
      x: images ``(..., H, W)``, float32 or float64.
      hp_filter: the filter, shape ``(kh, kw)``.
      borders: ``"strips"`` or ``"padded"`` (the same numbers).

    Returns:
      ``(..., H, W)``, dtype of ``x``: equal to :func:`high_pass` to the last
      bit wherever both are exact, and within an ulp otherwise.
    """
    hp_filter = normalised(hp_filter)
    kh, kw = len(hp_filter), len(hp_filter[0])
    (top, bottom), (left, right) = hp_padding(kh), hp_padding(kw)
    rows, cols = x.ndim - 2, x.ndim - 1
    h, w = x.shape[rows], x.shape[cols]
    zero = jnp.zeros((), x.dtype)

    def pad(y: jax.Array, t: int, b: int, l: int, r: int) -> jax.Array:
        return lax.pad(y, zero, [(0, 0, 0)] * rows + [(t, b, 0), (l, r, 0)])

    if borders == "padded":
        return taps_local_grid(pad_for_high_pass(x, hp_filter), hp_filter)
    out = taps_local_grid(pad(x, top, bottom, left, right), hp_filter)

    def strip_high_pass(strip: jax.Array) -> jax.Array:  # a thin strip, reflected in full
        return taps_local_grid(pad_for_high_pass(strip, hp_filter), hp_filter)

    r_rows, r_cols = min(h, top + bottom), min(w, left + right)  # input rows a border row reads
    row = lax.broadcasted_iota(jnp.int32, (h, 1), 0)
    col = lax.broadcasted_iota(jnp.int32, (1, w), 1)
    if top:
        out = jnp.where(row < top, pad(strip_high_pass(x[..., :r_rows, :])[..., :top, :], 0, h - top, 0, 0), out)
    if bottom:
        fixed = strip_high_pass(x[..., h - r_rows :, :])[..., r_rows - bottom :, :]
        out = jnp.where(row >= h - bottom, pad(fixed, h - bottom, 0, 0, 0), out)
    if left:
        out = jnp.where(col < left, pad(strip_high_pass(x[..., :, :r_cols])[..., :, :left], 0, 0, 0, w - left), out)
    if right:
        fixed = strip_high_pass(x[..., :, w - r_cols :])[..., :, r_cols - right :]
        out = jnp.where(col >= w - right, pad(fixed, 0, 0, w - right, 0), out)
    return out
