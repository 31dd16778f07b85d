"""SCC as a running metric: the pure update step and the stateful class over it."""

from __future__ import annotations

import functools
import warnings
from typing import Optional, Tuple, Union

import jax
from jax.typing import ArrayLike

from jax_scc._src import extents, state as state_lib
from jax_scc._src.config import Config, make_config
from jax_scc._src.checks import as_real_array
from jax_scc._src.functional import arrays, scores_of
from jax_scc._src.state import SCCState


def scc_update(
    state: SCCState,
    preds: ArrayLike,
    target: ArrayLike,
    hp_filter: Optional[ArrayLike] = None,
    window_size: int = 8,
    *,
    data_format: str = "NCHW",
    mask: Optional[ArrayLike] = None,
    ignore_nans: bool = False,
    ignore_flat: bool = False,
    method: str = "auto",
    sizes: Optional[ArrayLike] = None,
) -> SCCState:
    """Adds the per-sample SCC scores of a batch to the running totals.

    Pure: returns a new state and leaves ``state`` unchanged. Works under
    ``jax.jit`` and inside ``lax.scan`` / ``fori_loop``; the returned state has
    the same dtypes and shapes as ``state``, so a jitted step does not retrace.
    Configuration arguments are static, as in
    :func:`~jax_scc.spatial_correlation_coefficient`.

    Args:
      state: the totals so far (:func:`scc_init` to start).
      preds: predicted images, ``(N, C, H, W)`` / ``(N, H, W)`` for ``"NCHW"``
        or ``(N, H, W, C)`` / ``(N, H, W)`` for ``"NHWC"``. Any real dtype.
      target: ground-truth images, same shape as ``preds``.
      hp_filter: 2-D real high-pass filter (static); default: 3x3 Laplacian.
      window_size: side of the uniform local window (static).
      data_format: ``"NCHW"`` or ``"NHWC"`` (static).
      mask: optional boolean ``(N,)``: ``False`` drops a sample (e.g. the
        padding of a fixed-shape last batch). Dropped samples contribute
        nothing to the sum or the count, even when their score is NaN.
      ignore_nans: treat NaN pixels as missing data (static), as in
        :func:`~jax_scc.spatial_correlation_coefficient`.
      ignore_flat: count only windows where the target has structure
        (static), as in :func:`~jax_scc.spatial_correlation_coefficient`.
      method: ``"auto"``, ``"slices"``, ``"conv"`` or ``"direct"`` (static), as in
        :func:`~jax_scc.spatial_correlation_coefficient`.
      sizes: optional integer ``(N, 2)``: each sample's ``(height, width)`` in
        its canvas (data), as in :func:`~jax_scc.spatial_correlation_coefficient`.

    Returns:
      The updated :class:`SCCState`. An unmasked sample holding NaN or Inf
      makes the accumulated sum (and so :func:`scc_compute`) NaN.

    Raises:
      TypeError: ``state`` is not an :class:`SCCState`, an image is not a real
        array, or ``mask`` is not boolean.
      ValueError: bad images or configuration (as for
        :func:`~jax_scc.spatial_correlation_coefficient`), or ``mask`` not of
        shape ``(N,)``.

    Example:
      >>> import numpy as np
      >>> import jax_scc
      >>> x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
      >>> state = jax_scc.scc_update(jax_scc.scc_init(), x, x, window_size=4)
      >>> state = jax_scc.scc_update(state, x, -x, window_size=4,
      ...                            mask=np.array([True, False]))  # drop sample 1
      >>> int(state.count), float(jax_scc.scc_compute(state))  # (1 + 1 - 1) / 3
      (3, 0.3333333...)
    """
    config = make_config(
        hp_filter,
        window_size,
        data_format=data_format,
        method=method,
        ignore_nans=ignore_nans,
        ignore_flat=ignore_flat,
    )
    return update(state, preds, target, config, mask, sizes)


def update(
    state: SCCState,
    preds: ArrayLike,
    target: ArrayLike,
    config: Config,
    mask: Optional[ArrayLike] = None,
    sizes: Optional[ArrayLike] = None,
) -> SCCState:
    """:func:`scc_update` with its configuration already made: one compiled
    step per input shape (the checks run at trace time)."""
    state = state_lib.check_state(state)
    mask = None if mask is None else as_real_array(mask, "mask")
    return _update_step(state, *arrays(preds, target), mask, extents.as_array(sizes), config=config)


@functools.partial(jax.jit, static_argnames=("config",))
def _update_step(
    state: SCCState,
    preds: jax.Array,
    target: jax.Array,
    mask: Optional[jax.Array],
    sizes: Optional[jax.Array],
    config: Config,
) -> SCCState:
    return state_lib.add_scores(state, scores_of(preds, target, config, sizes), mask)


@functools.partial(jax.jit, static_argnames=("config",))
def _forward_step(
    state: SCCState,
    preds: jax.Array,
    target: jax.Array,
    mask: Optional[jax.Array],
    sizes: Optional[jax.Array],
    config: Config,
) -> Tuple[SCCState, jax.Array]:
    batch = state_lib.add_scores(state_lib.scc_init(), scores_of(preds, target, config, sizes), mask)
    return state_lib.scc_merge(state, batch), state_lib.scc_compute(batch)


class SpatialCorrelationCoefficient:
    """Spatial Correlation Coefficient with running totals (torchmetrics style).

    A thin shell over :func:`~jax_scc.scc_init`, :func:`~jax_scc.scc_update`,
    :func:`~jax_scc.scc_merge` and :func:`~jax_scc.scc_compute`: it holds one
    :class:`~jax_scc.SCCState` and replaces it on every update. Each update is
    one jitted step, compiled once per input shape; the totals stay on the device
    (or sharding) of the inputs, and nothing is copied to the host until you
    read the result of :meth:`compute`.

    The result equals torchmetrics' ``SpatialCorrelationCoefficient`` module:
    the mean of the per-sample scores of every sample seen since the last
    :meth:`reset`.

    Args:
      hp_filter: 2-D real high-pass filter; default: 3x3 Laplacian
        (torchmetrics calls it ``high_pass_filter``).
      window_size: side of the uniform local window.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: treat NaN pixels as missing data, as in
        :func:`~jax_scc.spatial_correlation_coefficient`.
      ignore_flat: count only windows where the target has structure, as in
        :func:`~jax_scc.spatial_correlation_coefficient`.
      method: ``"auto"``, ``"slices"``, ``"conv"`` or ``"direct"``, as in
        :func:`~jax_scc.spatial_correlation_coefficient`.

    Raises:
      ValueError / TypeError: on invalid configuration (checked here, once).

    Example:
      >>> import numpy as np
      >>> from jax_scc import SpatialCorrelationCoefficient
      >>> x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
      >>> scc = SpatialCorrelationCoefficient(window_size=4)
      >>> float(scc(x, x))          # this batch's score; also accumulated
      1.0
      >>> scc.update(x, -x)
      >>> float(scc.compute())      # mean over all 4 samples
      0.0
    """

    def __init__(
        self,
        hp_filter: Optional[ArrayLike] = None,
        window_size: int = 8,
        *,
        data_format: str = "NCHW",
        ignore_nans: bool = False,
        ignore_flat: bool = False,
        method: str = "auto",
    ) -> None:
        self._config = make_config(
            hp_filter,
            window_size,
            data_format=data_format,
            method=method,
            ignore_nans=ignore_nans,
            ignore_flat=ignore_flat,
        )
        self.reset()

    @property
    def config(self) -> Config:
        """The static configuration (filter, window, layout, method, flags)."""
        return self._config

    @property
    def state(self) -> SCCState:
        """The current :class:`~jax_scc.SCCState` (an immutable pytree)."""
        return self._state

    def reset(self) -> None:
        """Forgets everything accumulated: back to :func:`~jax_scc.scc_init`."""
        self._state = state_lib.scc_init()
        self._num_updates = 0

    def update(
        self,
        preds: ArrayLike,
        target: ArrayLike,
        mask: Optional[ArrayLike] = None,
        sizes: Optional[ArrayLike] = None,
    ) -> None:
        """Adds a batch's per-sample scores to the running totals.

        Args:
          preds: predicted images (see :func:`~jax_scc.spatial_correlation_coefficient`).
          target: ground-truth images, same shape as ``preds``.
          mask: optional boolean ``(N,)``; ``False`` drops a sample.
          sizes: optional integer ``(N, 2)``: each image's ``(height, width)``
            in its canvas (see :func:`~jax_scc.pad_to_canvas`).
        """
        self._state = update(self._state, preds, target, self._config, mask, sizes)
        self._num_updates += 1

    def __call__(
        self,
        preds: ArrayLike,
        target: ArrayLike,
        mask: Optional[ArrayLike] = None,
        sizes: Optional[ArrayLike] = None,
    ) -> jax.Array:
        """Scores this batch and accumulates it (torchmetrics' ``forward``).

        Args:
          preds: predicted images (see :func:`~jax_scc.spatial_correlation_coefficient`).
          target: ground-truth images, same shape as ``preds``.
          mask: optional boolean ``(N,)``; ``False`` drops a sample.
          sizes: optional integer ``(N, 2)``: each image's ``(height, width)``
            in its canvas.

        Returns:
          The mean score of this batch's (unmasked) samples, a float32 scalar
          (NaN if every sample is masked out).
        """
        mask = None if mask is None else as_real_array(mask, "mask")
        self._state, score = _forward_step(
            self._state, *arrays(preds, target), mask, extents.as_array(sizes), config=self._config
        )
        self._num_updates += 1
        return score

    def compute(self) -> jax.Array:
        """The mean per-sample score over everything accumulated since :meth:`reset`.

        Returns:
          A float32 scalar. Before any update it warns and returns NaN; after
          updates whose samples were all masked out it returns NaN.
        """
        if self._num_updates == 0:
            warnings.warn(
                "SpatialCorrelationCoefficient.compute() was called before any "
                "update(): no samples have been accumulated, returning NaN.",
                UserWarning,
                stacklevel=2,
            )
        return state_lib.scc_compute(self._state)

    def merge_state(self, other: Union["SpatialCorrelationCoefficient", SCCState]) -> None:
        """Adds another metric's totals (or an :class:`~jax_scc.SCCState`) to this one.

        Metrics merge when they compute the same scores: the same filter,
        window and flags (their ``method`` and ``data_format`` may differ).

        Raises:
          ValueError: ``other`` is a metric whose scores are defined differently.
          TypeError: ``other`` is neither a metric nor an :class:`~jax_scc.SCCState`.
        """
        if isinstance(other, SpatialCorrelationCoefficient):
            if other.config.scores_key() != self._config.scores_key():
                raise ValueError(
                    "Cannot merge SpatialCorrelationCoefficient metrics that score "
                    f"differently: this one has {self._config}, `other` has "
                    f"{other.config} (hp_filter, window_size, ignore_nans and "
                    "ignore_flat must agree)."
                )
            other_state, other_updates = other.state, other._num_updates
        elif isinstance(other, SCCState):
            other_state, other_updates = other, 1
        else:
            raise TypeError(
                "`other` must be a SpatialCorrelationCoefficient or an SCCState, "
                f"got {type(other).__name__}."
            )
        self._state = state_lib.scc_merge(self._state, other_state)
        self._num_updates += other_updates

    def __repr__(self) -> str:
        c = self._config
        return (
            f"SpatialCorrelationCoefficient(hp_filter={c.hp_filter}, "
            f"window_size={c.window_size}, data_format={c.data_format!r}, "
            f"ignore_nans={c.ignore_nans}, ignore_flat={c.ignore_flat}, method={c.method!r})"
        )
