"""Running totals of the remote-sensing SCCs over a stream of batches (a pytree).

A global correlation over a stream (the tiles of a scene, a dataset of
patches) is not a mean of per-batch scores: it needs the pooled moments of
the two feature images (:func:`~jax_scc._src.remote_sensing.features`) per
band. :class:`PooledSCCState` holds, per band, the number of pixels, the two
means, the two centred second moments and the centred co-moment. A batch's
moments are taken in two passes (centred) and merged with Chan et al.'s
update::

    n = na + nb,  d = mean_b - mean_a,  mean = mean_a + d nb / n,
    M2 = M2a + M2b + d**2 na nb / n,    C = Ca + Cb + dp dt na nb / n,

which is associative, so states of several shards merge in any order. Every
field is a double-float (float32 ``hi + lo``, the last axis of size 2), as in
:class:`~jax_scc.SCCState`, so that millions of pixels and thousands of merges
do not drift. The toolbox sCC is computed from the uncentred sums
``sum F G = C + n mean_F mean_G`` (and likewise the squares): its features are
non-negative, so this loses nothing to cancellation.

The definition (``"toolbox"`` or ``"zhou"``), Zhou's filter and ``ignore_nans``
are static fields of the state (part of its tree structure, not leaves): a
state knows what it pools, and a jitted step traces once per input shape.

Reference: Chan, Golub & LeVeque, "Algorithms for computing the sample
variance" (1983).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_scc._src import checks
from jax_scc._src import remote_sensing as rs
from jax_scc._src.state import _df_add

_DTYPE = jnp.float32
_FIELDS = ("count", "mean_p", "mean_t", "m2_p", "m2_t", "c_pt")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=list(_FIELDS),
    meta_fields=["definition", "hp_filter", "ignore_nans"],
)
@dataclasses.dataclass(frozen=True)
class PooledSCCState:
    """Pooled per-band moments of the two feature images (a pytree).

    Every array field is float32 of shape ``(C, 2)``: per band, a double-float
    ``[..., 0] + [..., 1]``.

    Attributes:
      count: pixels pooled.
      mean_p, mean_t: the means of the prediction's and the target's features.
      m2_p, m2_t: their centred sums of squares ``sum (x - mean)**2``.
      c_pt: the centred co-moment ``sum (p - mean_p)(t - mean_t)``.
      definition: ``"toolbox"`` or ``"zhou"`` (static).
      hp_filter: Zhou's high-pass filter, a tuple of tuples (static).
      ignore_nans: whether NaN pixels are missing data (static).

    Example:
      >>> import jax_scc
      >>> state = jax_scc.pooled_scc_init(4, "toolbox")
      >>> state.count.shape, state.definition
      ((4, 2), 'toolbox')
    """

    count: jax.Array
    mean_p: jax.Array
    mean_t: jax.Array
    m2_p: jax.Array
    m2_t: jax.Array
    c_pt: jax.Array
    definition: str = "toolbox"
    hp_filter: Optional[Tuple[Tuple[float, ...], ...]] = None
    ignore_nans: bool = False

    @property
    def config(self) -> rs.RSConfig:
        return rs.RSConfig(self.definition, self.hp_filter, self.ignore_nans)


def _value(x: jax.Array) -> jax.Array:
    return x[..., 0] + x[..., 1]


def _add(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.stack(_df_add(a[..., 0], a[..., 1], b[..., 0], b[..., 1]), axis=-1)


def _plus(a: jax.Array, x: jax.Array) -> jax.Array:
    """A double-float plus a float."""
    return _add(a, jnp.stack([x, jnp.zeros_like(x)], axis=-1))


def _check_state(state: Any, name: str = "state") -> PooledSCCState:
    if not isinstance(state, PooledSCCState):
        raise TypeError(
            f"`{name}` must be a PooledSCCState (from jax_scc.pooled_scc_init()), "
            f"got {type(state).__name__}."
        )
    return state


def pooled_scc_init(
    channels: int,
    definition: str = "toolbox",
    *,
    hp_filter: Optional[ArrayLike] = None,
    ignore_nans: bool = False,
) -> PooledSCCState:
    """An empty :class:`PooledSCCState` for images of ``channels`` bands.

    Args:
      channels: the number of bands ``C`` (1 for ``(N, H, W)`` batches).
      definition: ``"toolbox"`` (the pansharpening toolbox's sCC) or ``"zhou"``
        (Zhou's global SCC).
      hp_filter: Zhou's high-pass filter; default: 3x3 Laplacian.
      ignore_nans: NaN pixels are missing data, as in :func:`~jax_scc.pansharpening_scc`.

    Returns:
      A state with zero pixels in every band.

    Raises:
      ValueError, TypeError: on invalid configuration.

    Example:
      >>> import jax_scc
      >>> float(jax_scc.pooled_scc_compute(jax_scc.pooled_scc_init(1, "zhou")))
      nan
    """
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"`channels` must be a positive int, got {channels!r}.")
    config = rs.make_rs_config(definition, hp_filter, ignore_nans)
    zeros = jnp.zeros((channels, 2), _DTYPE)
    return PooledSCCState(*(zeros,) * len(_FIELDS), *dataclasses.astuple(config))


def _batch_moments(fp: jax.Array, ft: jax.Array, keep: Optional[jax.Array], weight: jax.Array):
    """The per-band moments of a batch of features ``(N, C, h, w)`` (two
    passes), as a :class:`PooledSCCState`'s array fields."""
    w = weight[:, None, None, None] if keep is None else keep & weight[:, None, None, None]
    w = jnp.broadcast_to(w, fp.shape)
    zero = jnp.zeros_like(fp)
    fp, ft = jnp.where(w, fp, zero), jnp.where(w, ft, zero)

    def band_sums(*xs):  # over samples and pixels: (C, 2) each
        return [jnp.stack(s, axis=-1) for s in rs.df_sums(xs, (0, 2, 3))]

    count, sum_p, sum_t = band_sums(w.astype(fp.dtype), fp, ft)
    n = _value(count)
    safe = jnp.where(n > 0, n, jnp.ones_like(n))
    mean_p, mean_t = _value(sum_p) / safe, _value(sum_t) / safe
    dp = jnp.where(w, fp - mean_p[None, :, None, None], zero)
    dt = jnp.where(w, ft - mean_t[None, :, None, None], zero)
    means = [jnp.stack([m, jnp.zeros_like(m)], -1) for m in (mean_p, mean_t)]
    return (count, *means, *band_sums(dp * dp, dt * dt, dp * dt))


def _merge_fields(a, b):
    na, nb = _value(a[0]), _value(b[0])
    count = _add(a[0], b[0])
    n = _value(count)
    frac = jnp.where(n > 0, nb / jnp.where(n > 0, n, jnp.ones_like(n)), jnp.zeros_like(n))
    dp, dt = _value(b[1]) - _value(a[1]), _value(b[2]) - _value(a[2])
    weight = na * frac  # na nb / n
    return (
        count,
        _plus(a[1], dp * frac),
        _plus(a[2], dt * frac),
        _plus(_add(a[3], b[3]), dp * dp * weight),
        _plus(_add(a[4], b[4]), dt * dt * weight),
        _plus(_add(a[5], b[5]), dp * dt * weight),
    )


def _fields(state: PooledSCCState):
    return tuple(getattr(state, f) for f in _FIELDS)


def _with_fields(state: PooledSCCState, fields) -> PooledSCCState:
    return dataclasses.replace(state, **dict(zip(_FIELDS, fields)))


@functools.partial(jax.jit, static_argnames=("data_format",))
def _update(state: PooledSCCState, preds, target, mask, data_format: str) -> PooledSCCState:
    config = state.config
    p, t = rs._checked(preds, target, config, data_format)
    if p.shape[1] != state.count.shape[0]:
        raise ValueError(
            f"the batch has {p.shape[1]} bands but `state` pools {state.count.shape[0]} "
            "(pooled_scc_init(channels, ...))."
        )
    mask = checks.check_mask(mask, p.shape[0])
    weight = jnp.ones((p.shape[0],), bool) if mask is None else mask
    fp, ft, keep = rs.features(p, t, config)
    batch = _batch_moments(fp.astype(_DTYPE), ft.astype(_DTYPE), keep, weight)
    return _with_fields(state, _merge_fields(_fields(state), batch))


def pooled_scc_update(
    state: PooledSCCState,
    preds: ArrayLike,
    target: ArrayLike,
    *,
    data_format: str = "NCHW",
    mask: Optional[ArrayLike] = None,
) -> PooledSCCState:
    """Pools the feature pixels of a batch into the running moments, per band.

    Pure; one compiled step per input shape (the state's configuration is
    static). Each sample's features are those of
    :func:`~jax_scc.pansharpening_scc` (cropped Sobel magnitudes) or
    :func:`~jax_scc.global_scc` (high-passed bands), taken per sample.

    Args:
      state: the moments so far (:func:`pooled_scc_init`).
      preds: predicted images, ``(N, C, H, W)`` / ``(N, H, W)`` for ``"NCHW"``
        or ``(N, H, W, C)`` / ``(N, H, W)`` for ``"NHWC"``.
      target: reference images, same shape as ``preds``.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      mask: optional boolean ``(N,)``: ``False`` drops a sample (it adds nothing,
        even NaN).

    Returns:
      The updated :class:`PooledSCCState`.

    Raises:
      TypeError: ``state`` is not a :class:`PooledSCCState`, an input is not a
        real array, or ``mask`` is not boolean.
      ValueError: bad images, a band count other than the state's, a ``mask`` not
        of shape ``(N,)``.

    Example:
      >>> import numpy as np
      >>> import jax_scc
      >>> x = np.random.default_rng(0).random((4, 3, 16, 16), dtype=np.float32)
      >>> state = jax_scc.pooled_scc_init(3, "zhou")
      >>> for batch in (x[:2], x[2:]):
      ...     state = jax_scc.pooled_scc_update(state, batch, batch)
      >>> float(jax_scc.pooled_scc_compute(state))
      1.0
    """
    state = _check_state(state)
    mask = None if mask is None else checks.as_real_array(mask, "mask")
    return _update(state, *rs._arrays(preds, target), mask, data_format=data_format)


def pooled_scc_merge(a: PooledSCCState, b: PooledSCCState) -> PooledSCCState:
    """The moments of the pixels of ``a`` and ``b`` together (e.g. two shards).

    Associative and commutative up to double-float rounding.

    Args:
      a: a :class:`PooledSCCState`.
      b: another, of the same configuration and band count.

    Returns:
      The merged :class:`PooledSCCState`.

    Raises:
      ValueError: the states pool different definitions or band counts.

    Example:
      >>> import numpy as np
      >>> import jax_scc
      >>> x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
      >>> s = jax_scc.pooled_scc_update(jax_scc.pooled_scc_init(1), x, x)
      >>> float(jax_scc.pooled_scc_merge(s, s).count.sum())  # 2 x 2 x 14 x 14 pixels
      784.0
    """
    a, b = _check_state(a, "a"), _check_state(b, "b")
    if a.config != b.config or a.count.shape != b.count.shape:
        raise ValueError(
            f"Cannot merge states that pool differently: {a.config} with "
            f"{a.count.shape[0]} bands and {b.config} with {b.count.shape[0]} bands."
        )
    return _with_fields(a, _merge_fields(_fields(a), _fields(b)))


@functools.partial(jax.jit, static_argnames=("per_band",))
def _compute(state: PooledSCCState, per_band: bool) -> jax.Array:
    n = _value(state.count)
    m_p, m_t = _value(state.mean_p), _value(state.mean_t)
    m2_p, m2_t, c = _value(state.m2_p), _value(state.m2_t), _value(state.c_pt)
    has_data = n > 0
    nan = jnp.full_like(n, jnp.nan)
    if state.definition == "toolbox":
        # Uncentred sums from the centred ones; the features are >= 0.
        sums = (c + n * m_p * m_t, m2_p + n * m_p * m_p, m2_t + n * m_t * m_t)
        if per_band:
            return jnp.where(has_data, rs._ratio(*sums), nan)
        pooled = rs._ratio(*(jnp.sum(s) for s in sums))
        return jnp.where(jnp.any(has_data), pooled, jnp.nan)
    bands = jnp.where(has_data, rs._ratio(c, m2_p, m2_t), nan)
    return bands if per_band else jnp.mean(bands)


def pooled_scc_compute(state: PooledSCCState, per_band: bool = False) -> jax.Array:
    """The SCC of every pixel pooled so far.

    ``"toolbox"``: ``sum F G / (sqrt(sum F**2) sqrt(sum G**2))`` over all pooled
    pixels and bands (per band: that band's); ``"zhou"``: per band the
    correlation coefficient of the pooled high-passed pixels, and their mean
    over bands. A stream of one batch of one sample gives the functional's
    number; of several samples, the score of their pixels pooled (not the mean
    of their scores).

    Args:
      state: a :class:`PooledSCCState`.
      per_band: if True, the ``(C,)`` band scores.

    Returns:
      float32, shape ``()`` or ``(C,)``; NaN for a band with no pixel.

    Example:
      >>> import numpy as np
      >>> import jax_scc
      >>> x = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)
      >>> s = jax_scc.pooled_scc_update(jax_scc.pooled_scc_init(3), x, x)
      >>> jax_scc.pooled_scc_compute(s, per_band=True).tolist()
      [1.0, 1.0, 1.0]
    """
    state = _check_state(state)
    if not isinstance(per_band, bool):
        raise TypeError(f"`per_band` must be a Python bool, got {per_band!r}.")
    return _compute(state, per_band)


def pooled_scc_sync(state: PooledSCCState, axis_name: Union[str, Sequence[str]]) -> PooledSCCState:
    """Merges the states of all devices along a named axis (the global state).

    Call it inside ``jax.shard_map`` or ``jax.pmap`` after each device has
    pooled its own pixels; every device gets the same merged moments back.
    The devices' double-floats are gathered exactly (a ``psum`` of one-hot
    slots: adding zeros is exact, and the result is typed as replicated) and
    merged pairwise with the centred update.

    Args:
      state: this device's :class:`PooledSCCState`.
      axis_name: the mapped axis name, or a tuple of names.

    Returns:
      The :class:`PooledSCCState` of all devices along ``axis_name``.

    Example:
      >>> import functools, jax
      >>> import numpy as np
      >>> import jax_scc
      >>> x = np.random.default_rng(0).random((jax.device_count(), 2, 1, 16, 16), dtype=np.float32)
      >>> @functools.partial(jax.pmap, axis_name="batch")
      ... def step(x):
      ...     s = jax_scc.pooled_scc_update(jax_scc.pooled_scc_init(1, "zhou"), x, x)
      ...     return jax_scc.pooled_scc_compute(jax_scc.pooled_scc_sync(s, "batch"))
      >>> round(float(step(x)[0]), 6)
      1.0
    """
    state = _check_state(state)
    if isinstance(axis_name, list):
        axis_name = tuple(axis_name)
    size = jax.lax.axis_size(axis_name)
    slot = (jax.lax.axis_index(axis_name) == jnp.arange(size))[:, None, None]
    fields = [
        jax.lax.psum(jnp.where(slot, f[None], jnp.zeros((size,) + f.shape, f.dtype)), axis_name)
        for f in _fields(state)
    ]
    while fields[0].shape[0] > 1:  # pairwise, vectorised over the pairs
        if fields[0].shape[0] % 2:
            fields = [jnp.concatenate([f, jnp.zeros_like(f[:1])]) for f in fields]
        fields = list(_merge_fields([f[0::2] for f in fields], [f[1::2] for f in fields]))
    return _with_fields(state, [f[0] for f in fields])
