"""A stateful, torchmetrics-style SCC metric: a thin shell over the pure state."""

from __future__ import annotations

import functools
import warnings
from typing import Any, Optional, Tuple

import jax

from jax_scc._src import state as state_lib
from jax_scc._src import validation
from jax_scc._src.scc import per_sample_scores
from jax_scc._src.state import SCCState
from jax_scc._src.validation import Config

# Number of times each jitted step below was traced (read by the tests to prove
# that a fixed input shape compiles once).
TRACE_COUNTS = {"update": 0, "forward": 0}


@functools.partial(jax.jit, static_argnames=("config", "ignore_nans"))
def _update_step(
    state: SCCState,
    preds: jax.Array,
    target: jax.Array,
    mask: Optional[jax.Array],
    config: Config,
    ignore_nans: bool = False,
) -> SCCState:
    TRACE_COUNTS["update"] += 1
    scores = per_sample_scores(preds, target, config, ignore_nans=ignore_nans)
    return state_lib.add_scores(state, scores, mask)


@functools.partial(jax.jit, static_argnames=("config", "ignore_nans"))
def _forward_step(
    state: SCCState,
    preds: jax.Array,
    target: jax.Array,
    mask: Optional[jax.Array],
    config: Config,
    ignore_nans: bool = False,
) -> Tuple[SCCState, jax.Array]:
    TRACE_COUNTS["forward"] += 1
    scores = per_sample_scores(preds, target, config, ignore_nans=ignore_nans)
    batch = state_lib.add_scores(state_lib.scc_init(), scores, mask)
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
      hp_filter: 2-D real high-pass filter; default: 3x3 Laplacian.
      window_size: side of the uniform local window.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: treat NaN pixels as missing data, as in
        :func:`~jax_scc.spatial_correlation_coefficient`.
      method: ``"auto"``, ``"slices"`` or ``"conv"``, as in
        :func:`~jax_scc.spatial_correlation_coefficient`.

    Raises:
      ValueError / TypeError: on invalid configuration (checked here, once).

    Example:
      >>> import jax
      >>> from jax_scc import SpatialCorrelationCoefficient
      >>> x = jax.random.uniform(jax.random.key(0), (2, 1, 16, 16))
      >>> scc = SpatialCorrelationCoefficient(window_size=4)
      >>> float(scc(x, x))          # this batch's score; also accumulated
      1.0
      >>> scc.update(x, -x)
      >>> float(scc.compute())      # mean over all 4 samples
      0.0
    """

    def __init__(
        self,
        hp_filter: Optional[Any] = None,
        window_size: int = 8,
        data_format: str = "NCHW",
        *,
        ignore_nans: bool = False,
        method: str = "auto",
    ) -> None:
        self._config = validation.make_config(hp_filter, window_size, data_format, method)
        self._ignore_nans = validation.check_ignore_nans(ignore_nans)
        self.reset()

    @property
    def config(self) -> Config:
        """The static configuration ``(hp_filter, window_size, data_format)``."""
        return self._config

    @property
    def state(self) -> SCCState:
        """The current :class:`~jax_scc.SCCState` (an immutable pytree)."""
        return self._state

    def reset(self) -> None:
        """Forgets everything accumulated: back to :func:`~jax_scc.scc_init`."""
        self._state = state_lib.scc_init()
        self._num_updates = 0

    def update(self, preds: Any, target: Any, mask: Optional[Any] = None) -> None:
        """Adds a batch's per-sample scores to the running totals.

        Args:
          preds: predicted images (see :func:`~jax_scc.spatial_correlation_coefficient`).
          target: ground-truth images, same shape as ``preds``.
          mask: optional boolean ``(N,)``; ``False`` drops a sample.
        """
        self._state = _update_step(
            self._state, preds, target, mask, config=self._config, ignore_nans=self._ignore_nans
        )
        self._num_updates += 1

    def __call__(self, preds: Any, target: Any, mask: Optional[Any] = None) -> jax.Array:
        """Scores this batch and accumulates it (torchmetrics' ``forward``).

        Args:
          preds: predicted images (see :func:`~jax_scc.spatial_correlation_coefficient`).
          target: ground-truth images, same shape as ``preds``.
          mask: optional boolean ``(N,)``; ``False`` drops a sample.

        Returns:
          The mean score of this batch's (unmasked) samples, a float32 scalar
          (NaN if every sample is masked out).
        """
        self._state, score = _forward_step(
            self._state, preds, target, mask, config=self._config, ignore_nans=self._ignore_nans
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

    def merge_state(self, other: "SpatialCorrelationCoefficient | SCCState") -> None:
        """Adds another metric's totals (or an :class:`~jax_scc.SCCState`) to this one.

        Raises:
          ValueError: ``other`` is a metric with a different configuration.
          TypeError: ``other`` is neither a metric nor an :class:`~jax_scc.SCCState`.
        """
        if isinstance(other, SpatialCorrelationCoefficient):
            if other.config != self._config:
                raise ValueError(
                    "Cannot merge SpatialCorrelationCoefficient metrics with different "
                    f"configurations: this one has {self._config}, `other` has "
                    f"{other.config}."
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
            f"SpatialCorrelationCoefficient(window_size={c.window_size}, "
            f"data_format={c.data_format!r}, hp_filter={c.hp_filter})"
        )
