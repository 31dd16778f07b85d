"""SCC as a ``clu.metrics.Metric``, to sit in a ``clu.metrics.Collection``.

Needs the ``clu`` package (``pip install "jax_scc[clu]"``); ``import jax_scc``
alone never imports it.

The metric keeps a running total of per-sample SCC scores (a compensated
float32 pair, so that millions of samples sum without drift) and a count of
samples; ``compute()`` is their ratio, i.e. the same number as
``spatial_correlation_coefficient`` over all samples seen (NaN before any).

Configuration (``hp_filter``, ``window_size``, ``data_format``,
``ignore_nans``, ``ignore_flat``, ``method``) is static and lives on the class, because
``Collection.empty()`` and ``Collection.single_from_model_output(**outputs)``
call the metric's classmethods without arguments beyond the model outputs.
:meth:`SCC.with_config` returns the (cached) configured class; a hand-written
subclass works the same way::

    @flax.struct.dataclass
    class SCC4(SCC):
        window_size: ClassVar[int] = 4
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Optional

import clu.metrics
import flax.struct
import jax
import jax.numpy as jnp

from jax_scc._src import checks, config as config_lib, metric
from jax_scc._src import state as _state

_CONFIG_NAMES = (
    "hp_filter",
    "window_size",
    "data_format",
    "ignore_nans",
    "ignore_flat",
    "method",
    "reduction",
)


@flax.struct.dataclass
class SCC(clu.metrics.Metric):
    """Spatial Correlation Coefficient as a ``clu.metrics.Metric``.

    Fields (pytree leaves; a leading axis is added by ``all_gather``):
      total: float32 ``()``, the running sum of per-sample scores.
      compensation: float32 ``()``, the rounding error of ``total`` (a
        double-float pair with it, as in :class:`jax_scc.SCCState`).
      count: int32 ``()``, the number of samples scored.

    The class attributes ``hp_filter`` (``None`` = 3x3 Laplacian),
    ``window_size`` (8), ``data_format`` ("NCHW"), ``ignore_nans`` (False),
    ``ignore_flat`` (False) and ``method`` ("auto") configure it, as the
    arguments of :func:`jax_scc.spatial_correlation_coefficient`; use
    :meth:`with_config` to get a configured class.

    Example:
      >>> import numpy as np
      >>> from clu import metrics
      >>> from jax_scc.clu import SCC
      >>> EvalMetrics = metrics.Collection.create(
      ...     scc=SCC.with_config(window_size=4), loss=metrics.Average.from_output("loss"))
      >>> x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
      >>> batch = EvalMetrics.single_from_model_output(preds=x, target=x, loss=np.ones(2))
      >>> result = EvalMetrics.empty().merge(batch).compute()
      >>> float(result["scc"]), float(result["loss"])
      (1.0, 1.0)
    """

    total: jax.Array
    compensation: jax.Array
    count: jax.Array

    hp_filter: ClassVar[Optional[Any]] = None
    window_size: ClassVar[int] = 8
    data_format: ClassVar[str] = "NCHW"
    ignore_nans: ClassVar[bool] = False
    ignore_flat: ClassVar[bool] = False
    method: ClassVar[str] = "auto"

    @classmethod
    def with_config(
        cls,
        hp_filter: Optional[Any] = None,
        window_size: int = 8,
        *,
        data_format: str = "NCHW",
        ignore_nans: bool = False,
        ignore_flat: bool = False,
        method: str = "auto",
    ) -> type["SCC"]:
        """Returns the SCC metric class for this static configuration.

        Arguments are validated here (as in
        :func:`jax_scc.spatial_correlation_coefficient`); the same
        configuration always returns the same class, so nothing recompiles.

        Raises:
          TypeError, ValueError: on invalid configuration.
        """
        config = config_lib.make_config(
            hp_filter,
            window_size,
            data_format=data_format,
            ignore_nans=ignore_nans,
            ignore_flat=ignore_flat,
            method=method,
        )
        return _configured(cls, config)

    @classmethod
    def _config(cls) -> config_lib.Config:
        return config_lib.make_config(
            cls.hp_filter,
            cls.window_size,
            data_format=cls.data_format,
            ignore_nans=cls.ignore_nans,
            ignore_flat=cls.ignore_flat,
            method=cls.method,
        )

    @classmethod
    def empty(cls) -> "SCC":
        """The metric before any sample: merging it is a no-op."""
        return cls._from_state(_state.scc_init())

    @classmethod
    def from_model_output(
        cls,
        preds: Any,
        target: Any,
        mask: Optional[Any] = None,
        sizes: Optional[Any] = None,
        **model_outputs: Any,
    ) -> "SCC":
        """Scores one batch.

        Args:
          preds: predicted images, ``(N, C, H, W)``/``(N, H, W)`` (or
            ``(N, H, W, C)`` for ``data_format="NHWC"``), any real dtype.
          target: ground-truth images, same shape as ``preds``.
          mask: optional ``(N,)`` per-sample mask (bool, or numbers where nonzero
            counts, as in ``clu.metrics.Average``); masked-out samples are not
            counted, even when they hold NaN.
          sizes: optional integer ``(N, 2)``: each image's ``(height, width)``
            in its canvas, for images of different sizes padded to one shape
            (see :func:`jax_scc.pad_to_canvas`).
          **model_outputs: other model outputs of a ``Collection``, ignored.

        Raises:
          TypeError: if a configuration argument is passed here (it is static:
            use :meth:`with_config`), or on non-array inputs.
          ValueError: on invalid shapes or a mask of the wrong shape.
        """
        misplaced = sorted(set(model_outputs) & set(_CONFIG_NAMES))
        if misplaced:
            raise TypeError(
                f"SCC.from_model_output got configuration {misplaced}: configuration is "
                "static, use `SCC.with_config(...)` and put the returned class in the "
                "Collection."
            )
        if mask is not None:
            mask = checks.as_real_array(mask, "mask")
            if mask.dtype != jnp.bool_:
                mask = mask != 0  # numbers count where nonzero, as in clu.metrics.Average
        return cls._from_state(metric.update(_state.scc_init(), preds, target, cls._config(), mask, sizes))

    @classmethod
    def _from_state(cls, state: _state.SCCState) -> "SCC":
        return cls(total=state.total, compensation=state.compensation, count=state.count)

    def _as_state(self) -> _state.SCCState:
        return _state.SCCState(self.total, self.compensation, self.count)

    def merge(self, other: "SCC") -> "SCC":
        """Sum of two states (:func:`jax_scc.scc_merge`): commutative, associative
        up to double-float rounding."""
        return self._from_state(_state.scc_merge(self._as_state(), other._as_state()))

    def compute(self) -> jax.Array:
        """Mean per-sample SCC over all samples seen: float32 ``()``, NaN if none."""
        return _state.scc_compute(self._as_state())


@functools.lru_cache(maxsize=None)
def _configured(base: type, config: config_lib.Config) -> type:
    name = f"{base.__name__}_w{config.window_size}_{config.data_format}"
    fields = {f: getattr(config, f) for f in _CONFIG_NAMES if f != "reduction"}
    attrs = {
        **fields,
        "__annotations__": {},
        "__module__": base.__module__,
        "__qualname__": name,
        "__doc__": f"{base.__name__} with "
        + ", ".join(f"{k}={v!r}" for k, v in fields.items())
        + ".",
    }
    return flax.struct.dataclass(type(name, (base,), attrs))


__all__ = ["SCC"]
