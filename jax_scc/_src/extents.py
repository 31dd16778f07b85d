"""Images of different sizes in one canvas: each image's extent as data.

A batch of ``(N, C, H, W)`` (or ``(N, H, W, C)``) canvases holds image ``i``
in its top-left ``sizes[i] = (h_i, w_i)`` pixels; what lies beyond is never
read. The extents are an ``int32 (N, 2)`` array, so one compiled program
serves every mix of sizes that fits the canvas.

The definition is honoured at each image's own border in two steps:

1. :func:`reflect_at_extents` (here, before any execution strategy): a gather
   on the canvas that puts, in the rows and columns just past each image, the
   symmetric reflection of the image's own last rows and columns (``... c b a
   | a b c ...``), exactly what the high-pass reads there when the image is
   scored alone. Everything further out repeats image pixels too, so the
   canvas holds only image values: the padding's contents (zeros, NaN, stale
   data) never matter, and the exact high-pass's grid (the image's largest
   magnitude) is the image's own.
2. The definition then zeroes the high-passed values outside each extent (the
   window's zero padding starts right after the image) and leaves the map
   pixels outside it out of the mean
   (:func:`~jax_scc._src.definition.inside_rows` with ``extents``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_scc._src.checks import as_real_array
from jax_scc._src.config import Config


def as_array(sizes: Any) -> Any:
    """``sizes`` as a JAX array (``None`` stays ``None``), before ``jit``
    sees it; a ``TypeError`` for what is not an array of real numbers."""
    return None if sizes is None else as_real_array(sizes, "sizes")


def check_sizes(sizes: Any, batch: int) -> jax.Array:
    """``sizes`` as an ``int32 (N, 2)`` array of ``(height, width)`` per sample.

    Raises:
      TypeError: ``sizes`` is not an array of integers.
      ValueError: its shape is not ``(N, 2)`` for the batch's ``N``.
    """
    sizes = as_real_array(sizes, "sizes")
    if not jnp.issubdtype(sizes.dtype, jnp.integer):
        raise TypeError(f"`sizes` must be an array of integers (height, width), got dtype {sizes.dtype}.")
    if sizes.shape != (batch, 2):
        raise ValueError(
            f"`sizes` must have shape (N, 2) = ({batch}, 2): each sample's (height, width), "
            f"got {sizes.shape}."
        )
    return sizes.astype(jnp.int32)


def valid(sizes: jax.Array, canvas: Tuple[int, int], config: Config) -> jax.Array:
    """bool ``(N,)``: the samples whose extent a per-image call would accept:
    within the canvas, at least the window, and large enough for the filter's
    reflection (the per-image checks of :func:`~jax_scc._src.checks.check_pair`)."""
    kh, kw = len(config.hp_filter), len(config.hp_filter[0])
    least = jnp.asarray([max(1, config.window_size, kh // 2), max(1, config.window_size, kw // 2)], jnp.int32)
    return jnp.all((sizes >= least[None]) & (sizes <= jnp.asarray(canvas, jnp.int32)[None]), axis=1)


def _reflected(n: int, size: jax.Array) -> jax.Array:
    """int32 ``(N, n)``: for each canvas position, the image position that the
    symmetric reflection at the image's last one (``size - 1``) puts there."""
    at = jnp.arange(n, dtype=jnp.int32)[None]
    size = jnp.clip(size, 1, n)[:, None]
    return jnp.clip(jnp.where(at < size, at, 2 * size - 1 - at), 0, n - 1)


def reflect_at_extents(x: jax.Array, sizes: jax.Array, config: Config) -> jax.Array:
    """The canvases of 4-D ``x`` (layout ``config.data_format``) with every
    position past an image's extent holding that image's symmetric reflection.

    A gather (its transpose adds the reflected positions' gradients back onto
    the image pixels they came from; the padding gets none).

    Args:
      x: ``(N, C, H, W)`` or ``(N, H, W, C)`` canvases.
      sizes: ``int32 (N, 2)``, each image's ``(height, width)``.
      config: the configuration (its ``data_format``).

    Returns:
      An array like ``x``.
    """
    nchw = config.data_format == "NCHW"
    h, w = (x.shape[2], x.shape[3]) if nchw else (x.shape[1], x.shape[2])
    rows, cols = _reflected(h, sizes[:, 0]), _reflected(w, sizes[:, 1])

    def one(image, r, c):  # (C, H, W) or (H, W, C)
        if nchw:
            return jnp.take(jnp.take(image, r, axis=1, mode="clip"), c, axis=2, mode="clip")
        return jnp.take(jnp.take(image, r, axis=0, mode="clip"), c, axis=1, mode="clip")

    return jax.vmap(one)(x, rows, cols)


def pad_to_canvas(
    images: Sequence[Any],
    canvas: Optional[Tuple[int, int]] = None,
    *,
    data_format: str = "NCHW",
) -> Tuple[np.ndarray, np.ndarray]:
    """Stacks images of different sizes into one batch of canvases, and their sizes.

    A host-side (NumPy) helper for data loading: each image goes in the
    top-left of a zero canvas; the returned ``sizes`` tell every entry point
    (``sizes=``) where each image ends, so that one compiled program scores
    any mix of sizes that fits the canvas.

    Args:
      images: a non-empty sequence of arrays, all ``(C, H, W)`` for
        ``"NCHW"`` or all ``(H, W, C)`` for ``"NHWC"`` (the same ``C``), or
        all ``(H, W)``.
      canvas: ``(height, width)`` of the canvas, at least every image's
        (e.g. a fixed bucket size, so that batches share one compilation);
        default: the largest height and the largest width.
      data_format: ``"NCHW"`` or ``"NHWC"``: where the channels are.

    Returns:
      ``(batch, sizes)``: ``batch`` of shape ``(N, C, H, W)``, ``(N, H, W, C)``
      or ``(N, H, W)`` (``(H, W)`` the canvas) and the images' common dtype;
      ``sizes``, int32 ``(N, 2)``, each image's ``(height, width)``.

    Raises:
      ValueError: no images, images of different ranks or channel counts,
        a bad ``data_format``, or a ``canvas`` smaller than an image.

    Example:
      >>> import numpy as np
      >>> from jax_scc import pad_to_canvas
      >>> batch, sizes = pad_to_canvas([np.ones((1, 20, 30)), np.ones((1, 24, 16))])
      >>> batch.shape, sizes.tolist()
      ((2, 1, 24, 30), [[20, 30], [24, 16]])
    """
    if data_format not in ("NCHW", "NHWC"):
        raise ValueError(f"`data_format` must be 'NCHW' or 'NHWC', got {data_format!r}.")
    arrays = [np.asarray(x) for x in images]
    if not arrays:
        raise ValueError("`images` must hold at least one image, got none.")
    ranks = {x.ndim for x in arrays}
    if len(ranks) != 1 or ranks.pop() not in (2, 3):
        raise ValueError(
            "`images` must be all 2-D (H, W) or all 3-D (with channels), got shapes "
            f"{[x.shape for x in arrays]}."
        )
    spatial = (0, 1) if arrays[0].ndim == 2 or data_format == "NHWC" else (1, 2)
    sizes = np.asarray([[x.shape[spatial[0]], x.shape[spatial[1]]] for x in arrays], np.int32)
    if arrays[0].ndim == 3:
        channel = 0 if data_format == "NCHW" else 2
        channels = {x.shape[channel] for x in arrays}
        if len(channels) != 1:
            raise ValueError(
                f"`images` must have the same number of channels ({data_format}), got shapes "
                f"{[x.shape for x in arrays]}."
            )
    largest = tuple(int(v) for v in sizes.max(axis=0))
    if canvas is None:
        canvas = largest
    canvas = tuple(int(v) for v in canvas)
    if len(canvas) != 2 or canvas[0] < largest[0] or canvas[1] < largest[1]:
        raise ValueError(
            f"`canvas` must be a (height, width) of at least the largest image's "
            f"{largest[0]}x{largest[1]}, got {canvas}."
        )
    shape = list(arrays[0].shape)
    shape[spatial[0]], shape[spatial[1]] = canvas
    batch = np.zeros([len(arrays)] + shape, np.result_type(*arrays))
    for out, x in zip(batch, arrays):
        out[tuple(slice(0, n) for n in x.shape)] = x
    return batch, sizes
