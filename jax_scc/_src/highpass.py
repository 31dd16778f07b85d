"""The high-pass stage of SCC: ``hp(x) = 2 * conv2d(x, hp_filter)``.

The filter is static configuration (a tuple of tuples of Python floats), so the
convolution unrolls into one shifted slice per non-zero tap.

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
from typing import Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from jax_scc._src.validation import Filter

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
    x: jax.Array, hp_filter: Filter, centre: Tuple[int, int], weight_scale: float
) -> jax.Array:
    """``sum_k w_k * x_k`` over the taps, padding ``x`` symmetric-reflect.

    Zero-sum filters are formed as ``sum_k w_k (x_k - x_centre)``.
    """
    kh, kw = len(hp_filter), len(hp_filter[0])
    (top, bottom), (left, right) = hp_padding(kh), hp_padding(kw)
    h, w = x.shape[-2], x.shape[-1]
    xp = reflect_pad(reflect_pad(x, top, bottom, x.ndim - 2), left, right, x.ndim - 1)
    zero_sum = math.fsum(v for row in hp_filter for v in row) == 0.0

    def tap(a: int, b: int) -> jax.Array:
        return xp[..., a : a + h, b : b + w]

    out = None
    for weight, offsets in _taps_by_weight(hp_filter).items():
        if zero_sum:
            # The centre tap's term is (x - x) * w = 0: leave it out.
            terms = [tap(a, b) - x for (a, b) in offsets if (a, b) != centre]
        else:
            terms = [tap(a, b) for (a, b) in offsets]
        if not terms:
            continue
        group = terms[0]
        for t in terms[1:]:
            group = group + t
        weight = weight * weight_scale
        group = group if weight == 1.0 else group * jnp.asarray(weight, x.dtype)
        out = group if out is None else out + group
    return jnp.zeros_like(x) if out is None else out


def _extraction_scale(x: jax.Array, headroom_bits: int) -> jax.Array:
    """Per-image power of two ``sigma >= max|x| * 2**headroom_bits``, shape ``(..., 1, 1)``.

    Non-finite pixels are ignored so that a NaN only affects the windows that
    contain it.
    """
    finite_abs = jnp.where(jnp.isfinite(x), jnp.abs(x), jnp.zeros_like(x))
    peak = jnp.max(finite_abs, axis=(-2, -1), keepdims=True)
    _, exponent = jnp.frexp(peak)  # peak < 2**exponent
    max_exp = jnp.finfo(x.dtype).maxexp - 1
    exponent = jnp.minimum(exponent + headroom_bits, max_exp)
    return lax.stop_gradient(jnp.ldexp(jnp.ones_like(peak), exponent))


def high_pass(x: jax.Array, hp_filter: Filter) -> jax.Array:
    """Applies ``2 * conv2d(x, hp_filter)`` with symmetric-reflect padding.

    Args:
      x: images of shape ``(..., H, W)``, float32 or float64.
      hp_filter: the filter as a tuple of tuples of floats, shape ``(kh, kw)``.

    Returns:
      The high-passed images, shape ``(..., H, W)``, dtype of ``x``.
    """
    kh, kw = len(hp_filter), len(hp_filter[0])
    centre = (hp_padding(kh)[0], hp_padding(kw)[0])
    scale = _dyadic_scale(hp_filter)
    two = jnp.asarray(2.0, x.dtype)
    if scale is None:
        return _filter_taps(x, hp_filter, centre, 1.0) * two

    # Integer weights w * 2**scale; the result is divided by 2**scale (exact).
    int_sum = sum(abs(v) * 2.0**scale for row in hp_filter for v in row)
    headroom = max(1, math.ceil(math.log2(int_sum + 1)) + 1)
    sigma = _extraction_scale(x, headroom)
    # Error-free split: hi carries the leading bits on a common grid, lo the rest.
    # The gradient flows through lo (d hi / d x = 0 almost everywhere would be
    # wrong), so hi is treated as a constant and lo as x - hi.
    hi = lax.stop_gradient((x + sigma) - sigma)
    lo = x - hi
    exact = _filter_taps(hi, hp_filter, centre, 2.0**scale)  # computed exactly
    rest = _filter_taps(lo, hp_filter, centre, 2.0**scale)
    return (exact + rest) * jnp.asarray(2.0 * 2.0**-scale, x.dtype)
