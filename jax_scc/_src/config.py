"""One configuration of an SCC evaluation, validated once and passed down.

Every public entry point (:func:`~jax_scc.scc_map`,
:func:`~jax_scc.spatial_correlation_coefficient`, :func:`~jax_scc.scc_update`,
:class:`~jax_scc.SpatialCorrelationCoefficient` and ``jax_scc.clu.SCC``) turns
its options into a :class:`Config` with :func:`make_config` and hands that one
object down: to the input checks, the execution strategy and the definition.

A :class:`Config` is hashable and compares by value, so it serves as a static
argument of ``jax.jit``: equal configurations given in different forms (a list
or a NumPy array as ``hp_filter``, ``np.int64(8)`` as ``window_size``) hit the
same compilation cache entry.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Optional, Tuple

import jax
import numpy as np

#: The default high-pass filter (a discrete Laplacian), as used by sewar and torchmetrics.
DEFAULT_HP_FILTER: Tuple[Tuple[float, ...], ...] = (
    (-1.0, -1.0, -1.0),
    (-1.0, 8.0, -1.0),
    (-1.0, -1.0, -1.0),
)

DATA_FORMATS = ("NCHW", "NHWC")
METHODS = ("auto", "slices", "conv", "direct")
REDUCTIONS = ("mean", "none", None)

Filter = Tuple[Tuple[float, ...], ...]


@dataclasses.dataclass(frozen=True)
class Config:
    """Static configuration of one SCC evaluation (hashable).

    Attributes:
      hp_filter: the high-pass filter as a tuple of rows of Python floats.
      window_size: side of the uniform local window (>= 1).
      data_format: ``"NCHW"`` or ``"NHWC"`` (for 4-D inputs).
      method: ``"auto"``, ``"slices"``, ``"conv"`` or ``"direct"``, as the user gave it;
        :mod:`jax_scc._src.execution` resolves it.
      ignore_nans: NaN input pixels are missing data.
      ignore_flat: map pixels whose target window is flat are left out.
      extents: each sample is an image of its own size in the top-left of the
        canvas (``sizes``, an ``int32 (N, 2)`` array given with the inputs;
        :mod:`jax_scc._src.extents`); map pixels outside it are left out.
        Set by the public functions when ``sizes`` is given, not by users.
    """

    hp_filter: Filter = DEFAULT_HP_FILTER
    window_size: int = 8
    data_format: str = "NCHW"
    method: str = "auto"
    ignore_nans: bool = False
    ignore_flat: bool = False
    extents: bool = False

    @property
    def masked(self) -> bool:
        """Whether some map pixels may be left out of the mean."""
        return self.ignore_nans or self.ignore_flat or self.extents

    def scores_key(self) -> Tuple[Any, ...]:
        """What determines the per-sample scores: configurations with equal keys
        give the same numbers (``method`` and ``data_format`` do not change them),
        so their running totals can be merged."""
        return (self.hp_filter, self.window_size, self.ignore_nans, self.ignore_flat)


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_hp_filter(hp_filter: Any) -> Filter:
    """Returns ``hp_filter`` as a hashable tuple of tuples of Python floats.

    Raises:
      TypeError: ``hp_filter`` is traced, not numeric, or complex.
      ValueError: ``hp_filter`` is not 2-D, is empty, or holds non-finite values.
    """
    if hp_filter is None:
        return DEFAULT_HP_FILTER
    if _is_tracer(hp_filter):
        raise TypeError(
            "`hp_filter` must be a concrete 2-D array-like (it is static configuration), "
            "but got a traced value. Pass it through `static_argnames`, close over it, "
            "or give it as a tuple of tuples."
        )
    try:
        arr = np.asarray(hp_filter)
    except Exception as e:  # numpy raises many kinds of errors for ragged input
        raise TypeError(
            f"`hp_filter` must be a 2-D real array-like, got {type(hp_filter).__name__}."
        ) from e
    if np.iscomplexobj(arr):
        raise TypeError(f"`hp_filter` must be real, got complex dtype {arr.dtype}.")
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(
            f"`hp_filter` must be a 2-D real array-like of numbers, got dtype {arr.dtype}."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"`hp_filter` must be 2-D, got {arr.ndim}-D array of shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"`hp_filter` must not be empty, got shape {arr.shape}.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`hp_filter` must hold finite values, got {arr.tolist()}.")
    return tuple(tuple(float(v) for v in row) for row in arr)


def check_window_size(window_size: Any) -> int:
    """Returns ``window_size`` as a Python int >= 1 (the image bound is checked later)."""
    if _is_tracer(window_size):
        raise ValueError(
            "`window_size` must be a concrete positive Python int (it is static "
            "configuration), but got a traced value. Pass it through `static_argnames`."
        )
    if isinstance(window_size, (bool, np.bool_)) or not isinstance(
        window_size, numbers.Integral
    ):
        raise ValueError(
            f"`window_size` must be a positive integer, got {window_size!r} "
            f"of type {type(window_size).__name__}."
        )
    window_size = int(window_size)
    if window_size < 1:
        raise ValueError(f"`window_size` must be a positive integer, got {window_size}.")
    return window_size


def check_reduction(reduction: Any) -> str:
    """Returns ``"mean"`` or ``"none"`` (for ``None``)."""
    if not (reduction is None or isinstance(reduction, str)) or reduction not in REDUCTIONS:
        raise ValueError(
            f"`reduction` must be one of 'mean', 'none' or None, got {reduction!r}."
        )
    return "none" if reduction is None else reduction


def _check_choice(name: str, value: Any, choices: Tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"`{name}` must be one of {listed}, got {value!r}.")
    return value


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be a Python bool (it is static configuration), got "
            f"{value!r} of type {type(value).__name__}."
        )
    return value


def make_config(
    hp_filter: Optional[Any] = None,
    window_size: Any = 8,
    *,
    data_format: Any = "NCHW",
    method: Any = "auto",
    ignore_nans: Any = False,
    ignore_flat: Any = False,
) -> Config:
    """Validates the options of a public call and returns its :class:`Config`.

    Raises:
      TypeError: a traced or non-numeric ``hp_filter``; a flag that is not a
        Python bool.
      ValueError: any other invalid option, with the argument named.
    """
    return Config(
        hp_filter=check_hp_filter(hp_filter),
        window_size=check_window_size(window_size),
        data_format=_check_choice("data_format", data_format, DATA_FORMATS),
        method=_check_choice("method", method, METHODS),
        ignore_nans=_check_flag("ignore_nans", ignore_nans),
        ignore_flat=_check_flag("ignore_flat", ignore_flat),
    )
