"""SCC as a ``flax.nnx.Metric``, to sit in an ``nnx.MultiMetric``.

Needs flax (``pip install "jax_scc[nnx]"``); ``import jax_scc`` alone never
imports it.

The metric's state lives in three ``nnx.metrics.MetricState`` variables: the
double-float running sum of per-sample scores (``total + compensation``) and
the sample count, exactly the fields of :class:`jax_scc.SCCState`, updated by
the same pure functions. Configuration (filter, window, layout, flags) is
static: it is checked once in ``__init__`` and kept as a plain attribute, so
an ``nnx.jit`` eval step compiles once per batch shape.

Like flax's own metrics, :meth:`SCC.update` takes keyword arguments and
ignores the ones it does not use, so one ``MultiMetric.update(loss=...,
preds=..., target=..., mask=...)`` call feeds every metric::

    metrics = nnx.MultiMetric(loss=nnx.metrics.Average("loss"), scc=SCC(window_size=8))

    @nnx.jit
    def eval_step(model, metrics, batch):
        preds = model(batch["inputs"])
        metrics.update(loss=loss_fn(preds, batch["target"]), preds=preds,
                       target=batch["target"], mask=batch["mask"])
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from jax_scc._src import checks, metric
from jax_scc._src import state as state_lib
from jax_scc._src.config import Config, make_config


class SCC(nnx.Metric):
    """Spatial Correlation Coefficient as a ``flax.nnx.Metric``.

    The mean per-sample SCC over every sample seen since :meth:`reset`: the
    number :func:`jax_scc.spatial_correlation_coefficient` gives over all of
    them (NaN before any).

    Args:
      hp_filter: 2-D real high-pass filter; default: 3x3 Laplacian.
      window_size: side of the uniform local window.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: treat NaN pixels as missing data, as in
        :func:`jax_scc.spatial_correlation_coefficient`.
      ignore_flat: count only windows where the target has structure, as in
        :func:`jax_scc.spatial_correlation_coefficient`.
      method: ``"auto"``, ``"slices"``, ``"conv"`` or ``"direct"``.
      preds_name: the keyword of :meth:`update` that holds the predictions.
      target_name: the keyword of :meth:`update` that holds the targets.

    Attributes:
      total: ``MetricState``, float32 ``()``: the running sum of scores.
      compensation: ``MetricState``, float32 ``()``: what ``total`` lacks of
        the exact sum.
      count: ``MetricState``, int32 ``()``: the number of samples counted.
      config: the static configuration (:class:`jax_scc._src.config.Config`).

    Raises:
      ValueError, TypeError: on invalid configuration (checked here, once).

    Example:
      >>> import numpy as np
      >>> from flax import nnx
      >>> from jax_scc.nnx import SCC
      >>> x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
      >>> metrics = nnx.MultiMetric(loss=nnx.metrics.Average("loss"), scc=SCC(window_size=4))
      >>> metrics.update(loss=np.ones(2, np.float32), preds=x, target=x)
      >>> metrics.update(loss=np.zeros(2, np.float32), preds=x, target=-x)
      >>> {k: float(v) for k, v in metrics.compute().items()}
      {'loss': 0.5, 'scc': 0.0}
    """

    def __init__(
        self,
        hp_filter: Optional[Any] = None,
        window_size: int = 8,
        *,
        data_format: str = "NCHW",
        ignore_nans: bool = False,
        ignore_flat: bool = False,
        method: str = "auto",
        preds_name: str = "preds",
        target_name: str = "target",
    ) -> None:
        self.config: Config = make_config(
            hp_filter,
            window_size,
            data_format=data_format,
            method=method,
            ignore_nans=ignore_nans,
            ignore_flat=ignore_flat,
        )
        for name, value in (("preds_name", preds_name), ("target_name", target_name)):
            if not isinstance(value, str):
                raise TypeError(f"`{name}` must be a str, got {type(value).__name__}.")
        self.preds_name = preds_name
        self.target_name = target_name
        empty = state_lib.scc_init()
        self.total = nnx.metrics.MetricState(empty.total)
        self.compensation = nnx.metrics.MetricState(empty.compensation)
        self.count = nnx.metrics.MetricState(empty.count)

    @property
    def state(self) -> state_lib.SCCState:
        """The current totals as a :class:`jax_scc.SCCState`."""
        return state_lib.SCCState(self.total[...], self.compensation[...], self.count[...])

    def _set(self, state: state_lib.SCCState) -> None:
        self.total[...] = state.total
        self.compensation[...] = state.compensation
        self.count[...] = state.count

    def reset(self) -> None:
        """Forgets every sample: back to :func:`jax_scc.scc_init`."""
        self._set(state_lib.scc_init())

    def update(self, *, mask: Optional[Any] = None, sizes: Optional[Any] = None, **kwargs: Any) -> None:
        """Adds a batch's per-sample scores to the totals (in place).

        Args:
          mask: optional ``(N,)`` per-sample mask (bool, or numbers where nonzero
            counts, as flax's ``Average`` takes them); masked-out samples are not
            counted, even when they hold NaN.
          sizes: optional integer ``(N, 2)``: each image's height and width in
            its canvas, for images of different sizes padded into one batch
            (as for :func:`jax_scc.spatial_correlation_coefficient`).
          **kwargs: must hold ``preds`` and ``target`` (or the names given as
            ``preds_name`` and ``target_name``): images as for
            :func:`jax_scc.spatial_correlation_coefficient`. Other keywords (the
            inputs of other metrics of an ``nnx.MultiMetric``) are ignored.

        Raises:
          TypeError: ``preds`` or ``target`` is missing, or not an array.
          ValueError: bad images or a mask of the wrong shape.
        """
        for name in (self.preds_name, self.target_name):
            if name not in kwargs:
                raise TypeError(f"Expected keyword argument '{name}'")
        if mask is not None:
            mask = checks.as_real_array(mask, "mask")
            if mask.dtype != jnp.bool_:
                mask = mask != 0
        self._set(
            metric.update(self.state, kwargs[self.preds_name], kwargs[self.target_name], self.config, mask, sizes)
        )

    def compute(self) -> jax.Array:
        """The mean per-sample SCC: float32 ``()``, NaN before any sample."""
        return state_lib.scc_compute(self.state)


__all__ = ["SCC"]
