"""The public functions: configuration, checks, execution, reduction.

Conventions (stated once, here):

* ``data_format="NCHW"`` takes ``(N, C, H, W)`` or ``(N, H, W)``;
  ``data_format="NHWC"`` takes ``(N, H, W, C)`` or ``(N, H, W)``.
* Integer, boolean, float16 and bfloat16 inputs are computed in float32;
  float32 stays float32; float64 stays float64 (with ``jax_enable_x64`` on).
* ``hp_filter``, ``window_size``, ``reduction`` and every keyword-only option
  are static configuration: they are validated in Python and each distinct
  value compiles once. Calling again with the same shapes does not retrace.
* A NaN or Inf in a sample makes that sample's score NaN (and the map NaN in the
  windows that see it); other samples in the batch are unaffected.
* An empty batch ``(0, ...)`` gives an empty map, ``(0,)`` scores for
  ``reduction="none"`` and NaN for ``reduction="mean"`` (a mean over nothing).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_scc._src import checks, execution, extents
from jax_scc._src.config import Config, check_reduction, make_config


def _prepared(preds: ArrayLike, target: ArrayLike, config: Config):
    """Checked 4-D inputs, the configuration that describes their layout, and
    whether they came as ``(N, H, W)``."""
    p, t = checks.check_pair(preds, target, config)
    if p.ndim == 4:
        return p, t, config, False
    config = dataclasses.replace(config, data_format="NCHW")
    return p[:, None], t[:, None], config, True  # one channel


def _evaluate(p: jax.Array, t: jax.Array, config: Config, output: str, sizes: Optional[ArrayLike]):
    """:func:`~jax_scc._src.execution.evaluate` of checked 4-D inputs; with
    ``sizes``, images of their own extents in the canvases (a sample whose
    extent a per-image call would refuse is NaN throughout)."""
    if sizes is None:
        return execution.evaluate(p, t, config, output)
    sizes = extents.check_sizes(sizes, p.shape[0])
    config = dataclasses.replace(config, extents=True)
    out = execution.evaluate(p, t, config, output, sizes)
    canvas = checks.spatial_shape(p.shape, config.data_format)
    ok = extents.valid(sizes, canvas, config).reshape((-1,) + (1,) * (out.ndim - 1))
    return jnp.where(ok, out, jnp.full_like(out, jnp.nan))


def arrays(preds: ArrayLike, target: ArrayLike):
    """``preds`` and ``target`` as JAX arrays of the compute dtype (a
    ``TypeError`` for what is not a real array); the rest of the checks run at
    trace time, under ``jit``. Casting first keeps one compiled program per
    shape whatever the input dtypes (uint8, float16, ...)."""
    p, t = checks.as_real_array(preds, "preds"), checks.as_real_array(target, "target")
    dtype = jnp.promote_types(checks.compute_dtype(p.dtype), checks.compute_dtype(t.dtype))
    return p.astype(dtype), t.astype(dtype)


def scores_of(preds: jax.Array, target: jax.Array, config: Config, sizes: Optional[ArrayLike] = None) -> jax.Array:
    """Checked per-sample SCC scores, shape ``(N,)``: the scores behind every
    reduction, the running totals and the class (traceable: call it inside a
    ``jit``). ``sizes``: each image's ``(height, width)`` in its canvas, or ``None``."""
    p, t, config, _ = _prepared(preds, target, config)
    if p.shape[0] == 0:
        if sizes is not None:
            extents.check_sizes(sizes, 0)
        return jnp.zeros((0,), p.dtype)
    return _evaluate(p, t, config, "scores", sizes)


# The public functions run as one compiled program each (checks at trace time,
# casts, the strategy, the reduction), so that an eager call dispatches once.
@functools.partial(jax.jit, static_argnames=("config", "reduction"))
def _reduced_scores(
    preds: jax.Array, target: jax.Array, sizes: Optional[jax.Array], config: Config, reduction: str
) -> jax.Array:
    scores = scores_of(preds, target, config, sizes)
    if reduction == "none":
        return scores
    return jnp.mean(scores) if scores.shape[0] else jnp.full((), jnp.nan, scores.dtype)


@functools.partial(jax.jit, static_argnames=("config",))
def _map(preds: jax.Array, target: jax.Array, sizes: Optional[jax.Array], config: Config) -> jax.Array:
    p, t, config, three_d = _prepared(preds, target, config)
    if not p.shape[0] and sizes is not None:
        extents.check_sizes(sizes, 0)
    m = _evaluate(p, t, config, "map", sizes) if p.shape[0] else p
    return m[:, 0] if three_d else m


def scc_map(
    preds: ArrayLike,
    target: ArrayLike,
    hp_filter: Optional[ArrayLike] = None,
    window_size: int = 8,
    *,
    data_format: str = "NCHW",
    ignore_nans: bool = False,
    ignore_flat: bool = False,
    method: str = "auto",
    sizes: Optional[ArrayLike] = None,
) -> jax.Array:
    """Per-pixel Spatial Correlation Coefficient map.

    For each channel, both images are high-passed
    (``hp(x) = 2 * conv2d(x, hp_filter)``, a true convolution over a
    symmetric-reflect padded input), and the local correlation of the two
    high-passed images is taken over a uniform ``window_size x window_size``
    window (zero padded). Its mean is :func:`spatial_correlation_coefficient`.

    Args:
      preds: predicted images, ``(N, C, H, W)`` / ``(N, H, W)`` for ``"NCHW"``
        or ``(N, H, W, C)`` / ``(N, H, W)`` for ``"NHWC"``. Any real dtype.
      target: ground-truth images, same shape as ``preds``.
      hp_filter: 2-D real high-pass filter (array-like, any size, static).
        Defaults to ``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]``.
      window_size: side of the uniform local window, ``1 <= window_size <= min(H, W)``.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: if True, NaN input pixels are missing data: the map is NaN
        exactly at the pixels whose footprint (filter support, then window)
        holds a NaN in ``preds`` or ``target`` of that channel, and gradients
        stay finite. Inf is not treated as missing.
      ignore_flat: if True, the map is NaN where the *target*'s window is flat
        (zero high-pass variance): those pixels are left out of the mean.
      method: how the windows are formed (static): ``"slices"``, ``"conv"``,
        ``"direct"`` or ``"auto"`` (see the README's Speed section). The same
        numbers to float32 rounding.
      sizes: optional integer ``(N, 2)``: each sample's ``(height, width)``
        when images of different sizes share one canvas (data, not static:
        one compilation serves every size that fits). Image ``i`` lies in the
        top-left ``sizes[i]`` pixels; the map there equals the map of the
        image scored alone, and is NaN outside it. A sample whose size a
        per-image call would refuse (larger than the canvas, smaller than
        the window) is NaN throughout. See :func:`~jax_scc.pad_to_canvas`.

    Returns:
      The SCC map with the shape of ``preds``; float32, or float64 for float64 input.

    Raises:
      TypeError: if an input is not a real array, or a flag not a bool.
      ValueError: on mismatched shapes, a rank other than 3 or 4, no channels,
        an invalid ``window_size``, ``data_format``, ``hp_filter`` or ``method``,
        or ``sizes`` not of shape ``(N, 2)`` (a ``TypeError`` if not integers).

    Example:
      >>> import numpy as np
      >>> from jax_scc import scc_map
      >>> x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
      >>> scc_map(x, x, window_size=4).shape
      (2, 1, 16, 16)
      >>> hole = x.copy(); hole[0, 0, 0, 0] = np.nan  # a no-data pixel in a corner
      >>> m = scc_map(hole, x, window_size=4, ignore_nans=True)
      >>> int(jnp.isnan(m).sum())  # the map pixels whose footprint sees it
      16
    """
    config = make_config(
        hp_filter,
        window_size,
        data_format=data_format,
        method=method,
        ignore_nans=ignore_nans,
        ignore_flat=ignore_flat,
    )
    return _map(*arrays(preds, target), extents.as_array(sizes), config)


def spatial_correlation_coefficient(
    preds: ArrayLike,
    target: ArrayLike,
    hp_filter: Optional[ArrayLike] = None,
    window_size: int = 8,
    reduction: Optional[str] = "mean",
    *,
    data_format: str = "NCHW",
    ignore_nans: bool = False,
    ignore_flat: bool = False,
    method: str = "auto",
    sizes: Optional[ArrayLike] = None,
) -> jax.Array:
    """Spatial Correlation Coefficient (SCC) between two image batches.

    The mean over pixels and channels of :func:`scc_map`: 1 for identical images
    with structure, around 0 for unrelated ones, and -1 for inverted structure.
    Semantics follow torchmetrics 1.9 ``spatial_correlation_coefficient``
    (derived from sewar's ``scc``), with float32 results that match the float64
    evaluation of the same definition to ~1e-6.

    Args:
      preds: predicted images, ``(N, C, H, W)`` / ``(N, H, W)`` for ``"NCHW"``
        or ``(N, H, W, C)`` / ``(N, H, W)`` for ``"NHWC"``. Any real dtype.
      target: ground-truth images, same shape as ``preds``.
      hp_filter: 2-D real high-pass filter (array-like, any size, static).
        Defaults to ``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]``.
      window_size: side of the uniform local window, ``1 <= window_size <= min(H, W)``.
      reduction: ``"mean"`` for one scalar over the batch; ``"none"`` or ``None``
        for one score per sample.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      ignore_nans: if True, NaN input pixels are missing data: map pixels whose
        footprint (filter support, then window) holds a NaN are left out of the
        mean over pixels and channels, gradients stay finite, and a sample with
        no valid map pixel scores NaN. Inf is not treated as missing.
      ignore_flat: if True, only windows where the *target* has structure
        (non-zero high-pass variance) count: identical images score 1, and a
        sample whose target is flat everywhere scores NaN. The default (False)
        is torchmetrics' definition: flat windows score 0 and count.
      method: how the windows are formed (static): ``"slices"``, ``"conv"``,
        ``"direct"`` or ``"auto"`` (see the README's Speed section). The same
        numbers to float32 rounding.
      sizes: optional integer ``(N, 2)``: each sample's ``(height, width)``
        when images of different sizes share one canvas (data, not static:
        one compilation serves every size that fits). Image ``i`` lies in the
        top-left ``sizes[i]`` pixels and scores as it would alone (its own
        borders, its own pixels; the canvas beyond is never read). A sample
        whose size a per-image call would refuse (larger than the canvas,
        smaller than the window) scores NaN. See :func:`~jax_scc.pad_to_canvas`.

    Returns:
      A scalar (``reduction="mean"``) or an ``(N,)`` array; float32, or float64
      for float64 input. A sample holding NaN (unless ``ignore_nans``) or Inf
      scores NaN.

    Raises:
      TypeError: if an input is not a real array, or a flag not a bool.
      ValueError: on mismatched shapes, a rank other than 3 or 4, no channels,
        an invalid ``window_size``, ``reduction``, ``data_format``,
        ``hp_filter`` or ``method``, or ``sizes`` not of shape ``(N, 2)`` (a
        ``TypeError`` if not integers).

    Example:
      >>> import numpy as np
      >>> from jax_scc import spatial_correlation_coefficient as scc
      >>> x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
      >>> float(scc(x, x, window_size=4))
      1.0
      >>> float(scc(x, -x, window_size=4))  # inverted structure
      -1.0
      >>> scc(x, x, window_size=4, reduction="none").shape
      (2,)
      >>> hole = x.copy(); hole[0, 0, 0, 0] = np.nan  # a no-data pixel in sample 0
      >>> float(scc(hole, x, window_size=4, ignore_nans=True))
      1.0
    """
    config = make_config(
        hp_filter,
        window_size,
        data_format=data_format,
        method=method,
        ignore_nans=ignore_nans,
        ignore_flat=ignore_flat,
    )
    return _reduced_scores(*arrays(preds, target), extents.as_array(sizes), config, check_reduction(reduction))
