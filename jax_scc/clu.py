"""SCC as a ``clu.metrics.Metric``, to sit in a ``clu.metrics.Collection``.

Needs the ``clu`` package (``pip install "jax_scc[clu]"``); ``import jax_scc``
alone never imports it.

The metric keeps a running total of per-sample SCC scores (a compensated
float32 pair, so that millions of samples sum without drift) and a count of
samples; ``compute()`` is their ratio, i.e. the same number as
``spatial_correlation_coefficient`` over all samples seen (NaN before any).

Configuration (``hp_filter``, ``window_size``, ``data_format``,
``ignore_nans``) is static and lives on the class, because
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

from jax_scc._src import scc as _scc
from jax_scc._src import state as _state
from jax_scc._src import validation

_CONFIG_NAMES = ("hp_filter", "window_size", "data_format", "ignore_nans", "reduction")


@flax.struct.dataclass
class SCC(clu.metrics.Metric):
    """Spatial Correlation Coefficient as a ``clu.metrics.Metric``.

    Fields (pytree leaves; a leading axis is added by ``all_gather``):
      total: float32 ``()``, the running sum of per-sample scores.
      compensation: float32 ``()``, the rounding error of ``total`` (Neumaier).
      count: int32 ``()``, the number of samples scored.

    The class attributes ``hp_filter`` (``None`` = 3x3 Laplacian),
    ``window_size`` (8), ``data_format`` ("NCHW") and ``ignore_nans`` (False)
    configure it; use :meth:`with_config` to get a configured class.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from clu import metrics
      >>> from jax_scc.clu import SCC
      >>> EvalMetrics = metrics.Collection.create(
      ...     scc=SCC.with_config(window_size=4), loss=metrics.Average.from_output("loss"))
      >>> x = jax.random.uniform(jax.random.key(0), (2, 1, 16, 16))
      >>> batch = EvalMetrics.single_from_model_output(preds=x, target=x, loss=jnp.ones(2))
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

    @classmethod
    def with_config(
        cls,
        hp_filter: Optional[Any] = None,
        window_size: int = 8,
        data_format: str = "NCHW",
        ignore_nans: bool = False,
    ) -> type["SCC"]:
        """Returns the SCC metric class for this static configuration.

        Arguments are validated here (as in
        :func:`jax_scc.spatial_correlation_coefficient`); the same
        configuration always returns the same class, so nothing recompiles.

        Raises:
          TypeError, ValueError: on invalid configuration.
        """
        config = validation.make_config(hp_filter, window_size, data_format)
        return _configured(cls, config, validation.check_ignore_nans(ignore_nans))

    @classmethod
    def _config(cls) -> validation.Config:
        return validation.make_config(cls.hp_filter, cls.window_size, cls.data_format)

    @classmethod
    def empty(cls) -> "SCC":
        """The metric before any sample: merging it is a no-op."""
        return cls._from_state(_state.scc_init())

    @classmethod
    def from_model_output(
        cls, preds: Any, target: Any, mask: Optional[Any] = None, **model_outputs: Any
    ) -> "SCC":
        """Scores one batch.

        Args:
          preds: predicted images, ``(N, C, H, W)``/``(N, H, W)`` (or
            ``(N, H, W, C)`` for ``data_format="NHWC"``), any real dtype.
          target: ground-truth images, same shape as ``preds``.
          mask: optional ``(N,)`` per-sample mask (bool, or numbers where nonzero
            counts, as in ``clu.metrics.Average``); masked-out samples are not
            counted, even when they hold NaN.
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
        ignore_nans = validation.check_ignore_nans(cls.ignore_nans)
        scores = _scc.per_sample_scores(preds, target, cls._config(), ignore_nans=ignore_nans)
        scores = scores.astype(jnp.float32)
        if mask is None:
            keep = jnp.ones(scores.shape, bool)
        else:
            mask = jnp.asarray(mask)
            if mask.dtype != jnp.bool_:
                mask = mask != 0
            keep = validation.check_mask(mask, scores.shape[0])
        return cls._from_state(_state.add_scores(_state.scc_init(), scores, keep))

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
def _configured(base: type, config: validation.Config, ignore_nans: bool) -> type:
    name = f"{base.__name__}_w{config.window_size}_{config.data_format}"
    attrs = {
        "hp_filter": config.hp_filter,
        "window_size": config.window_size,
        "data_format": config.data_format,
        "ignore_nans": ignore_nans,
        "__annotations__": {},
        "__module__": base.__module__,
        "__qualname__": name,
        "__doc__": f"{base.__name__} with hp_filter={config.hp_filter}, "
        f"window_size={config.window_size}, data_format={config.data_format!r}, "
        f"ignore_nans={ignore_nans}.",
    }
    return flax.struct.dataclass(type(name, (base,), attrs))


__all__ = ["SCC"]
