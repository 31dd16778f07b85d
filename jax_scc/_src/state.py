"""Running SCC totals as an immutable pytree, threaded through pure functions.

This module knows nothing about images: it adds up per-sample scores
(:func:`add_scores`); :func:`jax_scc.scc_update` scores a batch and calls it.

The state holds the sum of per-sample scores and the number of samples. The sum
is kept as an unevaluated pair of float32 numbers (``total + compensation``, a
"double-float"), so that it is as accurate as a float64 sum on hardware that has
no float64 (TPUs) and does not drift over millions of updates: a plain float32
running sum of 10^7 scores in [-1, 1] is off by 6e-5 (relative), the pair by
3e-14, on CPU and GPU alike (``python benchmarks/state_drift.py``).

Every leaf has a fixed dtype and shape, so the state returned by
:func:`scc_init` and the state returned by later updates have the same abstract
value: a jitted step taking and returning an :class:`SCCState` traces once per
input shape.

References: error-free transformations (TwoSum) and double-float addition,
Knuth, TAOCP vol. 2, sec. 4.2.2; Dekker (1971); Ogita, Rump & Oishi,
"Accurate sum and dot product" (2005).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

from jax_scc._src.checks import check_mask

_TOTAL_DTYPE = jnp.float32
_COUNT_DTYPE = jnp.int32


class SCCState(NamedTuple):
    """Running totals of the Spatial Correlation Coefficient (a pytree).

    The sum of all per-sample scores accumulated so far is
    ``total + compensation`` evaluated exactly (``|compensation|`` is at most
    half an ulp of ``total``); the mean score is that sum divided by ``count``.

    Attributes:
      total: float32, shape ``()``: the float32-rounded sum of the scores.
      compensation: float32, shape ``()``: what ``total`` lacks of the exact sum.
      count: int32, shape ``()``: the number of samples counted (exact up to
        2**31 - 1 samples).

    Example:
      >>> import jax_scc
      >>> state = jax_scc.scc_init()
      >>> state.total.dtype, state.count.dtype
      (dtype('float32'), dtype('int32'))
    """

    total: jax.Array
    compensation: jax.Array
    count: jax.Array


# --- error-free float arithmetic -------------------------------------------------


def _two_sum(a: jax.Array, b: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """``s, e`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly (Knuth's TwoSum).

    Branch-free and valid for any order of magnitude of ``a`` and ``b``; XLA
    does not reassociate float additions, so the error term survives compilation.
    """
    s = a + b
    b_virtual = s - a
    a_virtual = s - b_virtual
    e = (a - a_virtual) + (b - b_virtual)
    return s, e


def _df_add(
    a_hi: jax.Array, a_lo: jax.Array, b_hi: jax.Array, b_lo: jax.Array
) -> Tuple[jax.Array, jax.Array]:
    """Sum of two double-floats, renormalised (relative error ~ 2 * 2**-48)."""
    s, e = _two_sum(a_hi, b_hi)
    e = e + (a_lo + b_lo)
    # TwoSum rather than FastTwoSum: after cancellation |e| may exceed |s|.
    return _two_sum(s, e)


def _split(x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """``x`` as a float32 pair ``hi + lo`` (exact for float32; ~1e-14 for float64)."""
    hi = x.astype(_TOTAL_DTYPE)
    if x.dtype == _TOTAL_DTYPE:
        return hi, jnp.zeros_like(hi)
    lo = (x - hi.astype(x.dtype)).astype(_TOTAL_DTYPE)
    return hi, lo


def _df_sum(hi: jax.Array, lo: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """Sum of a 1-D array of double-floats as a double-float, by pairwise TwoSum.

    Each of the ``ceil(log2(n))`` levels adds neighbours with :func:`_df_add`
    (vectorised), so the error stays at the double-float level (~n * 2**-48
    relative) however many scores a batch holds.
    """
    n = hi.shape[0]
    if n == 0:
        zero = jnp.zeros((), _TOTAL_DTYPE)
        return zero, zero
    while n > 1:
        if n % 2:
            hi = jnp.concatenate([hi, jnp.zeros((1,), hi.dtype)])
            lo = jnp.concatenate([lo, jnp.zeros((1,), lo.dtype)])
            n += 1
        hi, lo = _df_add(hi[0::2], lo[0::2], hi[1::2], lo[1::2])
        n //= 2
    return hi[0], lo[0]


# --- validation -------------------------------------------------------------------


def check_state(state: Any, name: str = "state") -> SCCState:
    if not isinstance(state, SCCState):
        raise TypeError(
            f"`{name}` must be an SCCState (from jax_scc.scc_init() or a previous "
            f"update), got {type(state).__name__}."
        )
    expected = (
        ("total", _TOTAL_DTYPE),
        ("compensation", _TOTAL_DTYPE),
        ("count", _COUNT_DTYPE),
    )
    for field, dtype in expected:
        value = getattr(state, field)
        shape = getattr(value, "shape", None)
        got_dtype = getattr(value, "dtype", None)
        if shape != () or got_dtype != dtype:
            raise TypeError(
                f"`{name}.{field}` must be a scalar of dtype {jnp.dtype(dtype).name}, "
                f"got {type(value).__name__} with shape {shape} and dtype {got_dtype}. "
                "Build states with jax_scc.scc_init()."
            )
    return state


# --- the public pure functions ------------------------------------------------------


def scc_init() -> SCCState:
    """An empty :class:`SCCState`: no samples, a zero sum.

    Returns:
      ``SCCState(total=0.0, compensation=0.0, count=0)`` with dtypes float32,
      float32, int32 and shape ``()`` each.

    Example:
      >>> import jax_scc
      >>> int(jax_scc.scc_init().count)
      0
    """
    zero = jnp.zeros((), _TOTAL_DTYPE)
    return SCCState(total=zero, compensation=zero, count=jnp.zeros((), _COUNT_DTYPE))


def add_scores(
    state: SCCState, scores: Any, mask: Optional[Any] = None
) -> SCCState:
    """Adds per-sample scores of shape ``(N,)`` to ``state`` (the accumulate step).

    ``mask`` (boolean ``(N,)``) drops samples; a dropped sample contributes
    nothing even if its score is NaN.
    """
    state = check_state(state)
    scores = jnp.asarray(scores)
    if scores.ndim != 1 or not jnp.issubdtype(scores.dtype, jnp.floating):
        raise ValueError(
            f"`scores` must be a 1-D float array of per-sample scores, got shape "
            f"{scores.shape} and dtype {scores.dtype}."
        )
    mask = check_mask(mask, scores.shape[0])
    if mask is None:
        count = jnp.asarray(scores.shape[0], _COUNT_DTYPE)
    else:
        # `where`, not a product: 0 * NaN would still be NaN.
        scores = jnp.where(mask, scores, jnp.zeros_like(scores))
        count = jnp.sum(mask, dtype=_COUNT_DTYPE)
    hi, lo = _df_sum(*_split(scores))
    total, compensation = _df_add(state.total, state.compensation, hi, lo)
    return SCCState(total=total, compensation=compensation, count=state.count + count)


def scc_merge(a: SCCState, b: SCCState) -> SCCState:
    """Combines the totals of two states (e.g. from two evaluation shards).

    Commutative exactly, and associative up to double-float rounding (~1e-14
    relative), so states can be merged in any order or tree shape.

    Args:
      a: an :class:`SCCState`.
      b: another :class:`SCCState`.

    Returns:
      The :class:`SCCState` of all samples of ``a`` and ``b``.

    Example:
      >>> import numpy as np
      >>> import jax_scc
      >>> x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
      >>> s = jax_scc.scc_update(jax_scc.scc_init(), x, x, window_size=4)
      >>> int(jax_scc.scc_merge(s, s).count)
      4
    """
    a = check_state(a, "a")
    b = check_state(b, "b")
    total, compensation = _df_add(a.total, a.compensation, b.total, b.compensation)
    return SCCState(total=total, compensation=compensation, count=a.count + b.count)


def scc_compute(state: SCCState) -> jax.Array:
    """The mean per-sample SCC over everything accumulated in ``state``.

    This equals torchmetrics' ``SpatialCorrelationCoefficient`` module: the sum of
    per-sample scores divided by the number of samples.

    Args:
      state: an :class:`SCCState`.

    Returns:
      A float32 scalar. **An empty state (count 0, e.g. straight from
      :func:`scc_init`, or only masked-out samples) gives NaN.**

    Example:
      >>> import numpy as np
      >>> import jax_scc
      >>> x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
      >>> float(jax_scc.scc_compute(jax_scc.scc_update(jax_scc.scc_init(), x, x, window_size=4)))
      1.0
      >>> float(jax_scc.scc_compute(jax_scc.scc_init()))
      nan
    """
    return _compute_impl(check_state(state))


@jax.jit
def _compute_impl(state: SCCState) -> jax.Array:
    # Jitted so that calling it eagerly moves nothing between host and device.
    total = state.total + state.compensation
    count = state.count.astype(_TOTAL_DTYPE)
    nonempty = state.count > 0
    safe = jnp.where(nonempty, count, jnp.ones_like(count))
    return jnp.where(nonempty, total / safe, jnp.full_like(total, jnp.nan))


def scc_sync(state: SCCState, axis_name: Union[str, Sequence[str]]) -> SCCState:
    """Sums the states of all devices along a named axis (the global state).

    Call it inside ``jax.shard_map`` or ``jax.pmap`` (or any context that binds
    ``axis_name``) after each device has updated its own state; every device
    gets the same global totals back.

    The double-float sums are gathered to every device exactly and added with
    the same pairwise TwoSum reduction as a batch's scores, because a plain
    ``psum`` of ``total`` would round the global sum to float32 once more. (The
    gather is a ``psum`` of a one-hot vector of the pairs: adding zeros is exact,
    and unlike ``all_gather`` its result is typed as replicated, so it can leave
    ``shard_map`` with ``out_specs=P()``.) The counts are ``psum``-ed.

    Args:
      state: this device's :class:`SCCState`.
      axis_name: the mapped axis name, or a tuple of names, to sync over.

    Returns:
      The :class:`SCCState` of all devices along ``axis_name``.

    Example:
      >>> import functools, jax
      >>> import numpy as np
      >>> import jax_scc
      >>> x = np.random.default_rng(0).random((jax.device_count(), 2, 1, 16, 16), dtype=np.float32)
      >>> @functools.partial(jax.pmap, axis_name="batch")
      ... def step(x):
      ...     s = jax_scc.scc_update(jax_scc.scc_init(), x, x, window_size=4)
      ...     return jax_scc.scc_sync(s, "batch")
      >>> int(step(x).count[0]) == 2 * jax.device_count()
      True
    """
    state = check_state(state)
    if isinstance(axis_name, list):
        axis_name = tuple(axis_name)
    size = jax.lax.axis_size(axis_name)
    slot = jax.lax.axis_index(axis_name) == jnp.arange(size)
    zeros = jnp.zeros((size,), _TOTAL_DTYPE)
    hi = jax.lax.psum(jnp.where(slot, state.total, zeros), axis_name)
    lo = jax.lax.psum(jnp.where(slot, state.compensation, zeros), axis_name)
    total, compensation = _df_sum(hi, lo)
    count = jax.lax.psum(state.count, axis_name)
    return SCCState(total=total, compensation=compensation, count=count)
