"""File handling for the ``jax-scc`` command: reading images, pairing folders, atomic writes.

Every reader returns a NumPy array of shape ``(H, W, C)`` (``C == 1`` for grey
images) holding the values stored in the file, in the file's own dtype. The
readers (imageio with Pillow, tifffile) are imported on first use, so that
``import jax_scc`` never imports them.

Errors about one file are raised as :class:`ImageError` with a one-line message
that does not name the file; the caller adds the path.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zlib
from typing import IO, Iterator, List, Optional, Tuple

import numpy as np

from jax_scc._src.checks import is_real_dtype

#: Suffixes (lower case) of the files the command reads.
SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy")

_INSTALL_HINT = 'reading image files needs the "cli" extra: pip install "jax_scc[cli]"'


class ImageError(Exception):
    """A file that cannot be scored: missing, unreadable, corrupt or of an unusable layout."""


class MissingReaderError(ImportError):
    """imageio or tifffile is not installed."""


def _imageio():
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise MissingReaderError(f"{_INSTALL_HINT} (imageio is missing: {e})") from e
    return iio


def _tifffile():
    try:
        import tifffile
    except ImportError as e:
        raise MissingReaderError(f"{_INSTALL_HINT} (tifffile is missing: {e})") from e
    return tifffile


def check_readers() -> None:
    """Imports the readers once, so that a missing extra is reported before any work.

    Raises:
      MissingReaderError: imageio or tifffile is not installed.
    """
    _imageio()
    _tifffile()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# --- readers -------------------------------------------------------------------------


def read_image(path: str, array_layout: str = "HWC") -> np.ndarray:
    """Reads one image file as an ``(H, W, C)`` array of its stored values.

    Args:
      path: a ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff`` or ``.npy`` file.
      array_layout: how a 3-D ``.npy`` array is laid out: ``"HWC"`` or ``"CHW"``.

    Returns:
      The image as ``(H, W, C)`` in the dtype stored in the file; grey images
      have ``C == 1``. Alpha channels of PNG/JPEG/TIFF files are dropped.

    Raises:
      ImageError: the file is missing, unreadable, corrupt, of an unsupported
        type, or not a single 2-D image.
      MissingReaderError: imageio or tifffile is not installed.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise ImageError(
            f"unsupported file type {suffix or '(no suffix)'!r} "
            f"(supported: {', '.join(SUFFIXES)})"
        )
    if not os.path.exists(path):
        raise ImageError("no such file")
    if os.path.isdir(path):
        raise ImageError("is a folder, not an image file")
    if suffix == ".npy":
        img = _read_npy(path, array_layout)
    elif suffix in (".tif", ".tiff"):
        img = _read_tiff(path)
    else:
        img = _read_pillow(path)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[0] == 0 or img.shape[1] == 0 or img.shape[2] == 0:
        raise ImageError(f"empty image of shape {img.shape}")
    if not is_real_dtype(img.dtype):
        raise ImageError(f"cannot score values of dtype {img.dtype} (real numbers needed)")
    return img


def _read_npy(path: str, array_layout: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ImageError(f"not a readable .npy array ({_one_line(e)})") from e
    if not isinstance(arr, np.ndarray):  # pragma: no cover - np.load of .npy gives arrays
        raise ImageError("not a .npy array")
    if arr.ndim == 3 and array_layout == "CHW":
        arr = np.moveaxis(arr, 0, -1)
    elif arr.ndim not in (2, 3):
        raise ImageError(
            f"a .npy image must be 2-D (H, W) or 3-D (H, W, C) / (C, H, W), "
            f"got shape {arr.shape}"
        )
    return arr


def _read_tiff(path: str) -> np.ndarray:
    tifffile = _tifffile()
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            arr = series.asarray()
            page = tif.pages[0]
            extrasamples = tuple(int(v) for v in getattr(page, "extrasamples", ()) or ())
    except Exception as e:
        raise ImageError(f"not a readable TIFF image ({_one_line(e)})") from e
    if axes == "YX":
        return arr
    if axes in ("YXS", "YXC"):
        img = arr
    elif axes in ("SYX", "CYX"):
        img = np.moveaxis(arr, 0, -1)
    else:
        raise ImageError(
            f"a TIFF image must hold one 2-D image (axes YX, YXS or SYX), "
            f"got axes {axes} of shape {arr.shape}"
        )
    # Extra samples are the last channels; 1 and 2 mark (associated or
    # unassociated) alpha, which is dropped; others (e.g. an infrared band) stay.
    alpha = [img.shape[-1] - len(extrasamples) + i for i, v in enumerate(extrasamples) if v in (1, 2)]
    if alpha and len(alpha) < img.shape[-1]:
        img = np.delete(img, alpha, axis=-1)
    return img


def _png_header(path: str) -> Optional[Tuple[int, int, int]]:
    """``(bit depth, colour type, interlace)`` of a PNG file, or None if it is no PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25], head[28]


def _read_pillow(path: str) -> np.ndarray:
    iio = _imageio()
    try:
        header = _png_header(path)
        if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
            # Pillow has no 16-bit colour modes and would keep only the high byte.
            return _read_png16_colour(path)
        with iio.imopen(path, "r", plugin="pillow") as f:
            mode = f.metadata(index=0, exclude_applied=False).get("mode", "")
            n_frames = f.properties(index=None).n_images or 1
            arr = f.read(index=0)
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"not a readable image ({_one_line(e)})") from e
    if n_frames > 1:
        raise ImageError(f"an animated image with {n_frames} frames, not one image")
    if arr.ndim == 3 and mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        arr = arr[..., :-1]  # alpha dropped
    elif arr.ndim == 3 and mode == "P" and arr.shape[-1] == 4:
        arr = arr[..., :3]  # a palette with transparency, expanded to RGBA
    return arr


def image_size(path: str, array_layout: str = "HWC") -> Optional[Tuple[int, int]]:
    """``(height, width)`` of an image file from its header, without decoding
    the pixels (to plan the command's canvas sizes); ``None`` if it cannot be
    told (the file's decoding then reports what is wrong with it)."""
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".png":
            with open(path, "rb") as f:
                head = f.read(24)
            if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                return int(height), int(width)
            return None
        if suffix == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            if len(shape) == 2 or (len(shape) == 3 and array_layout == "HWC"):
                return int(shape[0]), int(shape[1])
            return (int(shape[1]), int(shape[2])) if len(shape) == 3 else None
        if suffix in (".tif", ".tiff"):
            with _tifffile().TiffFile(path) as tif:
                series = tif.series[0]
                axes, shape = series.axes, series.shape
            if axes in ("YX", "YXS", "YXC"):
                return int(shape[0]), int(shape[1])
            return (int(shape[1]), int(shape[2])) if axes in ("SYX", "CYX") else None
        from PIL import Image

        with Image.open(path) as im:  # reads the header only
            width, height = im.size
        return int(height), int(width)
    except Exception:
        return None


# --- 16-bit colour PNG ---------------------------------------------------------------

_PNG_CHANNELS = {2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


def _png_chunks(data: bytes) -> Iterator[Tuple[bytes, bytes]]:
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ImageError(f"corrupt PNG: chunk {kind!r} is truncated")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ImageError(f"corrupt PNG: bad CRC in chunk {kind!r}")
        yield kind, body
        if kind == b"IEND":
            return
        pos += 12 + length
    raise ImageError("corrupt PNG: no IEND chunk")


def _unfilter_sequential(kind: int, cur: bytearray, prev: bytes, bpp: int) -> None:
    """In-place reconstruction of an Average (3) or Paeth (4) filtered row."""
    n = len(cur)
    if kind == 3:
        for i in range(n):
            left = cur[i - bpp] if i >= bpp else 0
            cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 0xFF
        return
    for i in range(n):
        b = prev[i]
        if i >= bpp:
            a, c = cur[i - bpp], prev[i - bpp]
        else:
            a = c = 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
        cur[i] = (cur[i] + pred) & 0xFF


def _read_png16_colour(path: str) -> np.ndarray:
    """Decodes a non-interlaced 16-bit RGB, RGBA or grey+alpha PNG (alpha dropped).

    None, Sub and Up rows are reconstructed with NumPy; Average and Paeth rows
    depend on their own left neighbours and run in a Python loop, so this path
    is slower than Pillow's (up to about half a second for a 512x512 RGB image).
    """
    with open(path, "rb") as f:
        data = f.read()
    header = None
    idat = []
    for kind, body in _png_chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise ImageError("corrupt PNG: no IHDR chunk")
    width, height, _, colour_type, _, _, interlace = header
    if interlace:
        raise ImageError(
            "interlaced 16-bit colour PNGs are not supported (Pillow would truncate "
            "them to 8 bits); save it non-interlaced, as TIFF or as .npy"
        )
    channels = _PNG_CHANNELS[colour_type]
    bpp = 2 * channels
    stride = width * bpp
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise ImageError(f"corrupt PNG: {_one_line(e)}") from e
    if len(raw) != height * (stride + 1):
        raise ImageError(
            f"corrupt PNG: {len(raw)} bytes of pixel data, expected {height * (stride + 1)}"
        )
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    out = np.empty((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, cur = rows[y, 0], rows[y, 1:]
        if kind == 0:
            out[y] = cur
        elif kind == 1:
            out[y] = np.cumsum(cur.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            out[y] = cur + prev
        elif kind in (3, 4):
            row = bytearray(cur.tobytes())
            _unfilter_sequential(int(kind), row, prev.tobytes(), bpp)
            out[y] = np.frombuffer(bytes(row), np.uint8)
        else:
            raise ImageError(f"corrupt PNG: unknown filter type {kind} in row {y}")
        prev = out[y]
    img = out.view(">u2").reshape(height, width, channels).astype(np.uint16)
    if colour_type in (4, 6):
        img = img[..., :-1]  # alpha dropped
    return img


# --- folders -------------------------------------------------------------------------


def find_images(root: str) -> List[str]:
    """Relative paths (with ``/``) of the image files under ``root``, sorted.

    Hidden files and folders (names starting with ``.``) and files of other
    types are skipped.
    """
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in SUFFIXES:
                continue
            rel = os.path.relpath(os.path.join(folder, name), root)
            found.append(rel.replace(os.sep, "/"))
    return sorted(found)


# --- output --------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Opens a temporary file beside ``path`` that replaces ``path`` only when complete.

    The file is flushed and synced before the rename, so ``path`` holds either
    its old content (or nothing) or the whole new content, never a part.
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_map(scc_map: np.ndarray, npy_path: str, png_path: Optional[str]) -> None:
    """Saves an SCC map as ``.npy`` and, if ``png_path`` is given, as a colour PNG.

    The PNG shows the map (the mean over channels for colour images) with a
    diverging colour map from -1 (blue) through 0 (white) to 1 (red); NaN
    pixels are transparent.
    """
    os.makedirs(os.path.dirname(os.path.abspath(npy_path)), exist_ok=True)
    with atomic_write(npy_path, "wb") as f:
        np.save(f, scc_map)
    if png_path is not None:
        import matplotlib.image

        plane = scc_map if scc_map.ndim == 2 else scc_map.mean(axis=-1)
        with atomic_write(png_path, "wb") as f:
            matplotlib.image.imsave(f, plane, cmap="RdBu_r", vmin=-1.0, vmax=1.0, format="png")


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported (for the PNG version of ``--map``)."""
    try:
        import matplotlib.image  # noqa: F401
    except ImportError:
        return False
    return True

