"""The ``jax-scc`` command: the Spatial Correlation Coefficient of image files.

Two forms::

    jax-scc PRED TARGET            # two image files: prints their score
    jax-scc PRED_DIR TARGET_DIR    # two folders: pairs files by relative path,
                                   # prints the mean score over images

The same program runs as ``python -m jax_scc``. See ``jax-scc --help`` and
``docs/command_line.md``.

How it runs: the image sizes are read from the files' headers first, and the
pairs are planned into a few canvas sizes (:func:`plan_canvases`: the fewest
compilations for the least padding). A pool of threads decodes the files
ahead of the device (at most a bounded number of pairs in flight). Decoded
pairs are grouped by canvas, channels and dtype; each group is scored in
fixed-size batches of canvases (images of mixed sizes together, each with its
own ``sizes`` row; the last batch padded) by one jitted step, its batch axis
sharded over all local devices, so each group compiles once. The step returns
the batch's per-sample scores (for the per-image output) and adds them to a
running :class:`jax_scc.SCCState`, the padding masked out; the printed mean is
that state's ``scc_compute``. Compilations are kept in JAX's persistent cache
under the user's cache folder, so that a second run does not compile.
"""

from __future__ import annotations

import argparse
import ast
import collections
import contextlib
import csv
import functools
import json
import math
import os
import re
import sys
import tempfile
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from jax_scc import _cli_io
from jax_scc._version import __version__

PROG = "jax-scc"
_DEFINITIONS = ("windowed", "toolbox", "zhou")

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2

#: Default number of pairs per device batch (rounded up to a multiple of the
#: number of local devices, and lowered for large images).
DEFAULT_BATCH = 16
#: A default batch holds at most about this many pixels per input (accelerators).
_BATCH_PIXELS = 1 << 26
#: On CPU, a default batch holds about this many pixels per input.
_CPU_BATCH_PIXELS = 1 << 18
#: Decoding runs at most this many pairs, and about this many bytes, ahead.
_AHEAD_PAIRS = 256
_AHEAD_BYTES = 1 << 29
#: Decoded pairs held in partial batches before the oldest partial batch is scored.
_BUFFER_BYTES = 1 << 29
#: Canvas sizes are first rounded up to multiples of this (then merged, see plan_canvases).
CANVAS_STEP = 64
#: A merged canvas is its images' largest height and width rounded up to this.
CANVAS_FIT = 16
#: One more compilation costs about as much as scoring this many more canvas
#: pixels: on CPU ~1.5 s against ~22 Mpix/s (grey); on accelerators far more.
_CPU_COMPILE_PIXELS = 1 << 25
_COMPILE_PIXELS = 1 << 32

_DESCRIPTION = """\
Score images with the Spatial Correlation Coefficient (SCC): how well the
fine spatial structure (edges, texture) of a predicted image matches a target
image. 1 means the same structure, about 0 unrelated structure, -1 inverted
structure. Brightness offsets and smooth intensity changes do not matter.

  jax-scc pred.png target.png
      two image files: prints their score, one number.
  jax-scc PRED_DIR TARGET_DIR
      two folders: pairs the files that have the same relative path in both
      (subfolders included), scores every pair and prints the mean over the
      images. A file found on one side only is reported as an error.
"""

_EPILOG = """\
file types:
  .png, .jpg/.jpeg (8- or 16-bit, grey or colour), .tif/.tiff (any integer
  or float type, e.g. 16-bit or float32), .npy (2-D, or 3-D: see
  --data-format). Other files in the folders and hidden files are ignored.

how images are scored:
  - Values are scored as stored: integer images are NOT rescaled to [0, 1]
    (uint8 stays 0..255, uint16 0..65535), exactly as the Python function
    spatial_correlation_coefficient scores integer arrays. SCC does not
    change when an image is scaled or offset, so an 8-bit and a 16-bit file
    of the same picture score the same.
  - Computation is in float32 (float64 files too, unless JAX_ENABLE_X64=1).
  - Colour images: every channel is scored; the image's score is the mean
    over pixels and channels. An alpha channel (RGBA, grey+alpha, TIFF
    extra samples marked as alpha) is dropped. Both files of a pair must
    have the same height, width and number of channels.

output:
  Errors go to stderr, one line each, naming the file; a run with some bad
  pairs still scores the good ones. --json prints
    {"mean": M, "count": N,
     "images": [{"pred": P, "target": T, "scc": S}, ...],
     "errors": [{"pred": P, "target": T, "error": MESSAGE}, ...]}
  (NaN is written as null). --csv and --map files appear whole or not at all.

devices:
  Images of different sizes are padded into a few canvas sizes (each image
  still scored within its own borders) and scored in batches split over all
  local JAX devices (GPUs, or the CPU), one compilation per canvas size,
  while threads decode the next files. JAX_PLATFORMS=cpu forces the CPU.
  Compilations are kept between runs in JAX's persistent cache, in
  $XDG_CACHE_HOME/jax_scc (default ~/.cache/jax_scc; JAX_COMPILATION_CACHE_DIR
  chooses another folder); --no-cache or JAX_SCC_NO_CACHE=1 turns it off.

exit status:
  0  every pair was scored
  2  bad input: a missing, unreadable or corrupt file, mismatched shapes, an
     empty folder, an unpaired file, or a bad option
  1  an internal error (a bug: please report it)

examples:
  jax-scc recon.tif phantom.tif
  jax-scc --window-size 11 --json outputs/ ground_truth/ > scores.json
  jax-scc --csv scores.csv --map maps/ outputs/ ground_truth/
  jax-scc --hp-filter "[[0,-1,0],[-1,4,-1],[0,-1,0]]" a.png b.png
  jax-scc --definition toolbox fused.tif reference.tif   # pansharpening sCC
"""


class _UsageError(Exception):
    """A bad command line or environment, reported in one line with exit status 2."""


# --- arguments --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def parse_hp_filter(text: str) -> Tuple[Tuple[float, ...], ...]:
    """Parses a 2-D filter given as a JSON, Python or printed-NumPy literal.

    Accepts e.g. ``[[0,-1,0],[-1,4,-1],[0,-1,0]]``, ``((0, -1), (-1, 2))`` or
    NumPy's printed form ``[[ 0 -1  0] [-1  4 -1] [ 0 -1  0]]``.

    Args:
      text: the literal.

    Returns:
      The filter as a tuple of rows of floats.

    Raises:
      argparse.ArgumentTypeError: not a non-empty 2-D rectangular array of
        finite numbers.
    """
    value: Any = None
    candidates = [text, re.sub(r"(?<=[\d.\]])\s+(?=[-+\d.\[])", ",", text.strip())]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
            break
        except ValueError:
            pass
        try:
            value = ast.literal_eval(candidate)
            break
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    else:
        raise argparse.ArgumentTypeError(
            f"not a 2-D array literal: {text!r} (example: [[0,-1,0],[-1,4,-1],[0,-1,0]])"
        )
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"the filter must be a rectangular 2-D array of numbers, got {text!r}"
        ) from None
    if arr.ndim != 2 or arr.size == 0:
        raise argparse.ArgumentTypeError(
            f"the filter must be a non-empty 2-D array, got shape {arr.shape} from {text!r}"
        )
    if not np.all(np.isfinite(arr)):
        raise argparse.ArgumentTypeError(f"the filter must hold finite numbers, got {text!r}")
    return tuple(tuple(float(v) for v in row) for row in arr)


def _data_format(text: str) -> str:
    value = text.upper()
    if value not in ("NHWC", "NCHW"):
        raise argparse.ArgumentTypeError(f"expected NHWC or NCHW, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser (also used to render ``--help``)."""
    import jax

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pred", metavar="PRED", help="predicted image file, or a folder of them")
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="ground-truth image file, or a folder of them (a folder if PRED is one)",
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {__version__} (jax {jax.__version__})"
    )

    scoring = parser.add_argument_group("scoring (as in spatial_correlation_coefficient)")
    scoring.add_argument(
        "-w",
        "--window-size",
        type=_positive_int,
        default=8,
        metavar="N",
        help="side of the square window the local correlation is taken over (default: 8); "
        "at most the image's height and width",
    )
    scoring.add_argument(
        "--hp-filter",
        type=parse_hp_filter,
        default=None,
        metavar="ARRAY",
        help='2-D high-pass filter as a literal, e.g. "[[0,-1,0],[-1,4,-1],[0,-1,0]]" '
        "(default: the 3x3 Laplacian [[-1,-1,-1],[-1,8,-1],[-1,-1,-1]])",
    )
    scoring.add_argument(
        "--ignore-nans",
        action="store_true",
        help="treat NaN pixels (float TIFF or .npy) as missing data: map pixels whose "
        "window sees a NaN are left out of the mean (default: a NaN makes the image's "
        "score NaN)",
    )
    scoring.add_argument(
        "--ignore-flat",
        action="store_true",
        help="leave out of the mean the map pixels whose target window is flat (no "
        "high-pass variance), so that identical images score 1",
    )
    scoring.add_argument(
        "--definition",
        choices=_DEFINITIONS,
        default="windowed",
        help="which SCC: windowed (default: torchmetrics/sewar, local windows), toolbox "
        "(the pansharpening toolbox's sCC: Sobel magnitudes, uncentred, over all pixels "
        "and bands; --window-size and --hp-filter do not apply) or zhou (Zhou et al.'s "
        "global SCC: the high-passed bands' correlation coefficient, mean over bands; "
        "--window-size does not apply)",
    )
    scoring.add_argument(
        "--data-format",
        type=_data_format,
        default="NHWC",
        metavar="{NHWC,NCHW}",
        help="layout of 3-D .npy arrays: NHWC reads them as (H, W, C) (default), NCHW as "
        "(C, H, W); image files are always (H, W, C) and 2-D arrays (H, W)",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (mean, count, per-image scores, errors) instead of "
        "the score",
    )
    output.add_argument(
        "--csv",
        metavar="PATH",
        help="also write one CSV row per pair: pred,target,scc,error",
    )
    output.add_argument(
        "--map",
        metavar="DIR",
        help="also save each pair's SCC map in DIR as NAME.scc.npy (float32, the image's "
        "shape) and, with matplotlib installed, NAME.scc.png (blue -1, white 0, red 1), "
        "NAME being the pair's relative path",
    )
    output.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is only shown for folders, when stderr is a terminal "
        "and tqdm is installed)",
    )

    perf = parser.add_argument_group("performance")
    perf.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"pairs of one shape scored per device call, rounded up to a multiple of "
        f"the number of local devices (default: up to {DEFAULT_BATCH} on accelerators; on "
        "CPU about 256K pixels per call, e.g. one 512x512 image, 16 of 128x128)",
    )
    perf.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="threads decoding files ahead of the device (default: half the CPU cores "
        "when computing on the CPU, else all of them, at most 8)",
    )
    perf.add_argument(
        "--no-cache",
        action="store_true",
        help="do not keep compilations between runs (also: JAX_SCC_NO_CACHE=1); by default "
        "they are kept in JAX's persistent cache under the user's cache folder",
    )
    return parser


# --- pairs ------------------------------------------------------------------------------


@dataclass
class _Pair:
    """One (pred, target) pair and what became of it."""

    pred: Optional[str]
    target: Optional[str]
    name: str  # relative path in folder mode, the pred's file name for two files
    scc: Optional[float] = None
    error: Optional[str] = None


def _collect_pairs(pred: str, target: str) -> Tuple[List[_Pair], bool]:
    """The pairs to score and whether the inputs are folders.

    Raises:
      _UsageError: a path is missing, the two are not of the same kind, or a
        folder holds no image files (when both do not).
    """
    for path in (pred, target):
        if not os.path.exists(path):
            raise _UsageError(f"{path}: no such file or folder")
    pred_dir, target_dir = os.path.isdir(pred), os.path.isdir(target)
    if pred_dir != target_dir:
        folder, other = (pred, target) if pred_dir else (target, pred)
        raise _UsageError(
            f"{other}: is a file but {folder} is a folder (give two files or two folders)"
        )
    if not pred_dir:
        return [_Pair(pred, target, os.path.basename(pred))], False

    pred_files, target_files = _cli_io.find_images(pred), _cli_io.find_images(target)
    for folder, files in ((pred, pred_files), (target, target_files)):
        if not files:
            raise _UsageError(
                f"{folder}: no image files found (looked for {', '.join(_cli_io.SUFFIXES)})"
            )
    in_target = set(target_files)
    in_pred = set(pred_files)
    pairs = []
    for rel in sorted(in_pred | in_target):
        p, t = os.path.join(pred, rel), os.path.join(target, rel)
        if rel not in in_target:
            pairs.append(_Pair(p, None, rel, error=f"{p}: unpaired: no {rel} in {target}"))
        elif rel not in in_pred:
            pairs.append(_Pair(None, t, rel, error=f"{t}: unpaired: no {rel} in {pred}"))
        else:
            pairs.append(_Pair(p, t, rel))
    return pairs, True


# --- decoding -----------------------------------------------------------------------------


def _describe(shape: Tuple[int, ...]) -> str:
    h, w, c = shape
    return f"{h}x{w} ({c} channel{'s' if c != 1 else ''})"


def _decode(pair: _Pair, layout: str, window: int, filt_shape: Tuple[int, int], dtype: Any):
    """Reads and checks one pair; returns ``(pred, target)`` arrays or an error message."""
    arrays = []
    for path in (pair.pred, pair.target):
        try:
            arrays.append(_cli_io.read_image(path, layout))
        except _cli_io.ImageError as e:
            return f"{path}: {e}"
    p, t = arrays
    if p.shape != t.shape:
        return (
            f"{pair.pred}: shape differs from its target {pair.target}: "
            f"{_describe(p.shape)} vs {_describe(t.shape)}"
        )
    h, w = p.shape[:2]
    if window > min(h, w):
        return (
            f"{pair.pred}: image is {h}x{w} (H x W), smaller than the "
            f"{window}x{window} window (--window-size)"
        )
    kh, kw = filt_shape
    if kh // 2 > h or kw // 2 > w:
        return f"{pair.pred}: image is {h}x{w} (H x W), too small for the {kh}x{kw} --hp-filter"
    return _planar(p, dtype), _planar(t, dtype)


def _planar(img: np.ndarray, dtype: Any) -> np.ndarray:
    """``(H, W, C)`` as a contiguous ``(H, W)`` (grey) or ``(C, H, W)`` array of ``dtype``.

    Channel planes are what the SCC computation walks, so the transposition
    is done here, in the decoding threads, rather than on the device.
    """
    if img.shape[-1] == 1:
        return np.ascontiguousarray(img[..., 0], dtype=dtype)
    return np.ascontiguousarray(np.moveaxis(img, -1, 0), dtype=dtype)


# --- scoring ------------------------------------------------------------------------------


def default_batch_size(shape: Tuple[int, ...], on_cpu: bool) -> int:
    """Pairs per device call for images of ``shape`` when ``--batch-size`` is not given.

    On accelerators, up to :data:`DEFAULT_BATCH` pairs (fewer above
    ``_BATCH_PIXELS`` pixels per batch). On CPU, batches of about 2**18 pixels
    (the size the SCC computation walks in one chunk): one 512x512 image per
    call, 16 of 128x128. XLA's CPU backend computes a batch chunk after chunk
    anyway, so larger batches only spread one computation over the cores that
    decode the next files, at a higher total CPU cost (measured: 29 ms of CPU
    per 512x512 image in batches of 16 against 15 ms one by one).

    Args:
      shape: one image, ``(H, W)`` or ``(C, H, W)``.
      on_cpu: whether the devices are CPUs.

    Returns:
      The batch size (before rounding up to a multiple of the devices).
    """
    pixels = max(1, math.prod(shape))
    budget = _CPU_BATCH_PIXELS if on_cpu else _BATCH_PIXELS
    return max(1, min(DEFAULT_BATCH, budget // pixels))


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def plan_canvases(
    sizes: Sequence[Tuple[int, int]], compile_pixels: int = _CPU_COMPILE_PIXELS, step: int = CANVAS_STEP
) -> Dict[Tuple[int, int], Tuple[int, int]]:
    """The canvas each image size is scored in: few canvases, little padding.

    Every size is first rounded up to multiples of ``step`` (one bucket per
    rounded size); then, greedily, the two buckets whose merge (the larger
    height and the larger width) saves the most are merged, for as long as a
    merge saves something. The cost of a plan is ``compile_pixels`` per canvas
    (one compilation each) plus the canvas pixels of every image. Each final
    canvas is the largest height and width of its images, rounded up to
    multiples of :data:`CANVAS_FIT`.

    Args:
      sizes: ``(height, width)`` of every pair (repeated for pairs of one size).
      compile_pixels: what one more compilation costs, in canvas pixels.
      step: the rounding of the first buckets.

    Returns:
      A dict from every distinct size in ``sizes`` to its ``(height, width)`` canvas.
    """
    counts = collections.Counter((_round_up(h, step), _round_up(w, step)) for h, w in sizes)
    buckets = [(canvas, n) for canvas, n in counts.items()]  # (canvas, number of images)
    while len(buckets) > 1:
        best, pair = 0, None
        for i in range(len(buckets)):
            for j in range(i + 1, len(buckets)):
                (a, na), (b, nb) = buckets[i], buckets[j]
                merged = (max(a[0], b[0]), max(a[1], b[1]))
                extra = merged[0] * merged[1] * (na + nb) - a[0] * a[1] * na - b[0] * b[1] * nb
                saving = compile_pixels - extra
                if saving > best:
                    best, pair = saving, (i, j, merged)
        if pair is None:
            break
        i, j, merged = pair
        n = buckets[i][1] + buckets[j][1]
        buckets = [b for k, b in enumerate(buckets) if k not in (i, j)] + [(merged, n)]
    bucket_of = {}
    for h, w in set(sizes):
        rounded = (_round_up(h, step), _round_up(w, step))
        fits = [c for c, _ in buckets if c[0] >= rounded[0] and c[1] >= rounded[1]]
        bucket_of[(h, w)] = min(fits, key=lambda c: c[0] * c[1])
    fitted = {}
    for (h, w), bucket in bucket_of.items():
        old = fitted.get(bucket, (0, 0))
        fitted[bucket] = (max(old[0], _round_up(h, CANVAS_FIT)), max(old[1], _round_up(w, CANVAS_FIT)))
    return {size: fitted[bucket] for size, bucket in bucket_of.items()}


def _shardings(devices: Tuple[Any, ...]):
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch")), NamedSharding(mesh, PartitionSpec())


@functools.lru_cache(maxsize=8)
def _jitted_step(options: Tuple[Tuple[str, Any], ...], devices: Tuple[Any, ...]):
    """The jitted scoring step ``(state, preds, target, mask, sizes) -> (scores, state)``:
    per-sample scores of a batch of canvases sharded over ``devices`` (each
    image within its own ``sizes``), added to the running totals with the
    padding masked out (the pure state API).

    Cached, so that calling :func:`main` again in one process does not recompile.
    """
    import jax

    from jax_scc._src.config import make_config
    from jax_scc._src.functional import scores_of
    from jax_scc._src.state import add_scores

    options = dict(options)
    definition = options.pop("definition", "windowed")
    if definition == "windowed":
        config = make_config(**options)
        score = functools.partial(scores_of, config=config)
    else:
        from jax_scc._src import remote_sensing

        rs_config = remote_sensing.make_rs_config(definition, options.get("hp_filter"), options["ignore_nans"])
        score = functools.partial(remote_sensing.sample_scores, config=rs_config)

    def step(state, preds, target, mask, sizes):
        # The remote-sensing definitions take whole images (one canvas per size).
        scores = score(preds, target, sizes=sizes) if definition == "windowed" else score(preds, target)
        return scores, add_scores(state, scores, mask)

    by_batch, replicated = _shardings(devices)
    return jax.jit(
        step,
        in_shardings=(replicated, by_batch, by_batch, by_batch, by_batch),
        out_shardings=(by_batch, replicated),
    )


@functools.lru_cache(maxsize=8)
def _jitted_maps(options: Tuple[Tuple[str, Any], ...], devices: Tuple[Any, ...]):
    """The jitted SCC maps of a batch, sharded like :func:`_jitted_step`."""
    import jax

    from jax_scc import pansharpening_scc_map, scc_map

    options = dict(options)
    if options.pop("definition", "windowed") == "toolbox":  # (N, H - 2, W - 2)
        fn = functools.partial(pansharpening_scc_map, ignore_nans=options["ignore_nans"])
    else:
        fn = functools.partial(scc_map, **options)
    by_batch, _ = _shardings(devices)
    maps = lambda p, t, sizes: fn(p, t, sizes=sizes) if fn.func is scc_map else fn(p, t)  # noqa: E731
    return jax.jit(maps, in_shardings=(by_batch, by_batch, by_batch), out_shardings=by_batch)


class _Scorer:
    """Scores decoded pairs in fixed-shape batches of canvases sharded over the
    local devices: one compilation per (canvas, channels, dtype)."""

    def __init__(
        self,
        options: Dict[str, Any],
        batch_size: Optional[int],
        want_maps: bool,
        canvases: Dict[Tuple[int, int], Tuple[int, int]],
        planned: Dict[Tuple[int, int], int],
    ):
        import jax

        devices = tuple(jax.local_devices())
        self.ndev = len(devices)
        self.on_cpu = devices[0].platform == "cpu"
        key = tuple(sorted(options.items()))
        self._step = _jitted_step(key, devices)
        self._maps = _jitted_maps(key, devices) if want_maps else None
        from jax_scc import scc_init

        # Every scored pair's score, padding masked out; placed as the step
        # returns it, so that the second batch does not trace the step again.
        self.state = jax.device_put(scc_init(), _shardings(devices)[1])
        self.batch_size = batch_size
        self._canvases = canvases  # image size -> canvas (plan_canvases)
        self._planned = planned  # pairs per canvas (from the headers)
        self._groups: "collections.OrderedDict[Tuple, List]" = collections.OrderedDict()
        self._buffered = 0
        self._inflight: "collections.deque" = collections.deque()

    def _batch_for(self, key: Tuple) -> int:
        """One batch size per group (so one compilation): the default or
        ``--batch-size``, at most the power of two that holds the group's pairs."""
        if self.batch_size is not None:
            size = self.batch_size
        else:
            size = default_batch_size(key[0], self.on_cpu)
            planned = max(1, self._planned.get(key[0][-2:], 1))
            size = min(size, 1 << (planned - 1).bit_length())
        return -(-size // self.ndev) * self.ndev

    def _canvas(self, size: Tuple[int, int]) -> Tuple[int, int]:
        """The planned canvas of an image size (a size the headers did not
        announce: the smallest planned canvas it fits, else its own)."""
        if size in self._canvases:
            return self._canvases[size]
        fits = [c for c in self._planned if c[0] >= size[0] and c[1] >= size[1]]
        if fits:
            return min(fits, key=lambda c: c[0] * c[1])
        return (_round_up(size[0], CANVAS_STEP), _round_up(size[1], CANVAS_STEP))

    def add(self, index: int, pred: np.ndarray, target: np.ndarray) -> List[Tuple[int, str]]:
        """Queues a pair; scores its group's batch when full. Returns pair errors."""
        size = pred.shape[-2:]
        key = (pred.shape[:-2] + self._canvas(size), pred.dtype.str)
        items = self._groups.setdefault(key, [])
        items.append((index, pred, target))
        self._buffered += pred.nbytes + target.nbytes
        errors: List[Tuple[int, str]] = []
        if len(items) == self._batch_for(key):
            errors += self._dispatch(key)
        while self._buffered > _BUFFER_BYTES and self._groups:
            errors += self._dispatch(next(iter(self._groups)))
        return errors

    def flush(self) -> List[Tuple[int, str]]:
        """Scores every partial batch. Returns pair errors."""
        errors: List[Tuple[int, str]] = []
        while self._groups:
            errors += self._dispatch(next(iter(self._groups)))
        return errors

    def _dispatch(self, key: Tuple) -> List[Tuple[int, str]]:
        items = self._groups.pop(key)
        n = len(items)
        size = self._batch_for(key)
        shape, dtype = key
        sizes = np.zeros((size, 2), np.int32)
        sizes[:] = shape[-2:]  # the padding: whole canvases (masked out)
        if n == 1 and size == 1 and items[0][1].shape == shape:
            preds, target = items[0][1][None], items[0][2][None]
        else:
            preds = np.zeros((size,) + shape, dtype)
            target = np.zeros((size,) + shape, dtype)
            for j, (_, p, t) in enumerate(items):
                h, w = p.shape[-2:]
                preds[j, ..., :h, :w], target[j, ..., :h, :w] = p, t
                sizes[j] = h, w
        self._buffered -= sum(p.nbytes + t.nbytes for _, p, t in items)
        indices = [i for i, _, _ in items]
        mask = np.arange(size) < n
        try:
            # Dispatched asynchronously; the state chains the batches.
            scores, state = self._step(self.state, preds, target, mask, sizes)
            maps = self._maps(preds, target, sizes) if self._maps is not None else None
            self.state = state
        except (ValueError, TypeError) as e:  # configuration the images cannot take
            msg = " ".join(str(e).split())
            return [(i, msg) for i in indices]
        self._inflight.append((indices, scores, maps, sizes[:n]))
        return []

    def pending(self) -> int:
        """Number of batches dispatched whose results have not been collected."""
        return len(self._inflight)

    def collect(self):
        """Waits for the oldest dispatched batch; returns ``(indices, scores, maps)``.

        ``scores`` is a float32 NumPy array of the batch's real pairs (padding
        dropped); ``maps`` a list of their maps, each cropped to its image, or None.
        """
        indices, scores, maps, sizes = self._inflight.popleft()
        n = len(indices)
        scores = np.asarray(scores)[:n]
        if maps is not None:
            maps = np.asarray(maps)
            maps = [maps[j, ..., :h, :w] for j, (h, w) in enumerate(sizes)]
        return indices, scores, maps


# --- progress -----------------------------------------------------------------------------


def _progress(total: int, enabled: bool):
    """A progress bar on stderr (tqdm: count, ETA, pairs/s), drawn only when
    stderr is a terminal and tqdm is installed; else a stand-in that draws nothing."""
    stream = sys.stderr
    if enabled and total > 0 and hasattr(stream, "isatty") and stream.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(
                total=total,
                file=stream,
                desc=PROG,
                unit=" pairs",
                leave=False,
                dynamic_ncols=True,
                bar_format="{desc}: {n_fmt}/{total_fmt} pairs |{bar}| {elapsed}<{remaining}, {rate_fmt}",
            )

    class _Silent:
        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

    return _Silent()


def _user_cache_dir() -> str:
    """The user's cache folder for the command (XDG on Linux, the platform's elsewhere)."""
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    elif os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~/AppData/Local")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "jax_scc")


def compilation_cache_folder(no_cache: bool, configured: Optional[str]) -> Optional[str]:
    """Where the command keeps its compilations: ``None`` with ``--no-cache`` or
    ``JAX_SCC_NO_CACHE=1``; the folder JAX was given already (``configured``,
    e.g. ``JAX_COMPILATION_CACHE_DIR``); else ``jax_scc/xla`` in the user's cache
    folder, created, if it can be written (else ``None``: never a failure)."""
    if no_cache or os.environ.get("JAX_SCC_NO_CACHE", "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    if configured:
        return configured
    folder = os.path.join(_user_cache_dir(), "xla")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            pass
    except OSError:
        return None
    return folder


def _use_compilation_cache(args: argparse.Namespace) -> None:
    """Turns on JAX's persistent compilation cache (:func:`compilation_cache_folder`)."""
    import jax

    configured = jax.config.jax_compilation_cache_dir
    folder = compilation_cache_folder(args.no_cache, configured)
    if folder is None and configured:
        jax.config.update("jax_enable_compilation_cache", False)
    if folder is None or folder == configured:
        return
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


# --- the run ------------------------------------------------------------------------------


def _default_workers() -> int:
    import jax

    cores = os.cpu_count() or 1
    if jax.default_backend() == "cpu":  # XLA computes on the same cores
        return max(1, min(8, cores // 2))
    return max(1, min(8, cores))


def _compute_dtype(x64: bool) -> Any:
    return np.float64 if x64 else np.float32


def _map_paths(map_dir: str, name: str, png: bool) -> Tuple[str, Optional[str]]:
    base = os.path.join(map_dir, *name.split("/"))
    return base + ".scc.npy", (base + ".scc.png" if png else None)


def _score_pairs(pairs: List[_Pair], args: argparse.Namespace, folders: bool) -> Optional[float]:
    """Fills in ``scc`` or ``error`` of every pair; returns the mean score of
    the scored pairs (``scc_compute`` of the running state; None if none)."""
    import jax

    options: Dict[str, Any] = dict(
        window_size=args.window_size, data_format="NCHW", ignore_nans=args.ignore_nans
    )
    if args.hp_filter is not None:
        options["hp_filter"] = args.hp_filter
    if args.ignore_flat:
        options["ignore_flat"] = True
    window = args.window_size
    if args.definition != "windowed":
        options["definition"] = args.definition
        del options["window_size"]
        window = 1 if args.definition == "zhou" else 3  # the toolbox crops: at least 3x3
    x64 = bool(jax.config.jax_enable_x64)
    filt = args.hp_filter or ((0.0,) * 3,) * 3
    decode = functools.partial(
        _decode,
        layout="CHW" if args.data_format == "NCHW" else "HWC",
        window=window,
        filt_shape=(len(filt), len(filt[0])),
        dtype=_compute_dtype(x64),
    )
    png_maps = bool(args.map) and _cli_io.have_matplotlib()
    if args.map and not png_maps:
        print(f"{PROG}: note: matplotlib is not installed; maps are saved as .npy only",
              file=sys.stderr)
    todo = [i for i, pair in enumerate(pairs) if pair.error is None]
    progress = _progress(len(pairs), enabled=folders and not args.no_progress)
    progress.update(len(pairs) - len(todo))
    workers = args.workers or _default_workers()
    writes: List[Future] = []

    def fail(errors: List[Tuple[int, str]], name_pred: bool = False) -> None:
        for i, msg in errors:
            pairs[i].error = f"{pairs[i].pred}: {msg}" if name_pred else msg
        progress.update(len(errors))

    with ThreadPoolExecutor(workers, thread_name_prefix="jax-scc-decode") as pool:
        # The canvas sizes, planned from the files' headers before any decoding.
        layout = "CHW" if args.data_format == "NCHW" else "HWC"
        announced = [s for s in pool.map(lambda i: _cli_io.image_size(pairs[i].target, layout), todo) if s]
        on_cpu = jax.default_backend() == "cpu"
        if args.definition == "windowed":
            canvases = plan_canvases(announced, _CPU_COMPILE_PIXELS if on_cpu else _COMPILE_PIXELS)
        else:  # the remote-sensing definitions score whole images: a canvas per size
            canvases = {size: size for size in announced}
        planned = collections.Counter(canvases[s] for s in announced)
        scorer = _Scorer(options, args.batch_size, want_maps=bool(args.map), canvases=canvases, planned=planned)

        def collect() -> None:
            indices, scores, maps = scorer.collect()
            for j, i in enumerate(indices):
                pairs[i].scc = float(scores[j])
                if maps is not None:
                    m = maps[j] if maps[j].ndim == 2 else np.moveaxis(maps[j], 0, -1)
                    npy, png = _map_paths(args.map, pairs[i].name, png_maps)
                    writes.append(pool.submit(_cli_io.save_map, m, npy, png))
            progress.update(len(indices))

        # Decoding runs ahead of the device: up to _AHEAD_PAIRS pairs (and about
        # _AHEAD_BYTES of decoded pixels) are submitted to the pool at any time.
        queue: "collections.deque" = collections.deque()
        waiting = collections.deque(todo)
        pair_bytes = 0

        def top_up() -> None:
            while waiting and len(queue) < _AHEAD_PAIRS and (
                not queue or (len(queue) + 1) * pair_bytes <= _AHEAD_BYTES
            ):
                i = waiting.popleft()
                queue.append((i, pool.submit(decode, pairs[i])))

        top_up()
        try:
            while queue:
                i, future = queue.popleft()
                result = future.result()
                if not isinstance(result, str):
                    pair_bytes = result[0].nbytes + result[1].nbytes
                top_up()
                if isinstance(result, str):
                    fail([(i, result)])
                    continue
                fail(scorer.add(i, *result), name_pred=True)
                while scorer.pending() > 2:
                    collect()
            fail(scorer.flush(), name_pred=True)
            while scorer.pending():
                collect()
            for w in writes:
                w.result()
        finally:
            for _, future in queue:
                future.cancel()
            progress.close()
    from jax_scc import scc_compute

    return float(scc_compute(scorer.state)) if int(scorer.state.count) else None


def _number(x: Optional[float]) -> Optional[float]:
    return None if x is None or math.isnan(x) else x


def _report(
    pairs: List[_Pair], mean: Optional[float], args: argparse.Namespace, extra_errors: List[str]
) -> int:
    good = [p for p in pairs if p.error is None and p.scc is not None]
    bad = [p for p in pairs if p.error is not None]
    for p in bad:
        print(f"{PROG}: error: {p.error}", file=sys.stderr)
    for msg in extra_errors:
        print(f"{PROG}: error: {msg}", file=sys.stderr)
    nans = sum(math.isnan(p.scc) for p in good)
    if nans:
        print(
            f"{PROG}: warning: {nans} of {len(good)} image(s) scored NaN (NaN or Inf pixels); "
            "--ignore-nans treats NaN pixels as missing data",
            file=sys.stderr,
        )
    if args.csv:
        with _cli_io.atomic_write(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["pred", "target", "scc", "error"])
            for p in pairs:
                scc = "" if p.scc is None else repr(p.scc)
                writer.writerow([p.pred or "", p.target or "", scc, p.error or ""])
    if args.json:
        doc = {
            "mean": _number(mean),
            "count": len(good),
            "images": [
                {"pred": p.pred, "target": p.target, "scc": _number(p.scc)} for p in good
            ],
            "errors": [
                {"pred": p.pred, "target": p.target, "error": p.error} for p in bad
            ]
            + [{"pred": args.pred, "target": args.target, "error": m} for m in extra_errors],
        }
        print(json.dumps(doc, indent=2, allow_nan=False))
    elif mean is not None:
        print(repr(mean))
    return EXIT_BAD_INPUT if bad or extra_errors else EXIT_OK


def _prepare_outputs(args: argparse.Namespace) -> None:
    if args.csv:
        folder = os.path.dirname(os.path.abspath(args.csv))
        if not os.path.isdir(folder):
            raise _UsageError(f"--csv {args.csv}: folder {folder} does not exist")
        if os.path.isdir(args.csv):
            raise _UsageError(f"--csv {args.csv}: is a folder")
    if args.map:
        try:
            os.makedirs(args.map, exist_ok=True)
        except OSError as e:
            raise _UsageError(f"--map {args.map}: cannot create the folder ({e.strerror})") from e


def _check_definition(args: argparse.Namespace) -> None:
    if args.definition == "windowed":
        return
    if args.ignore_flat:
        raise _UsageError(f"--ignore-flat only applies to --definition windowed, not {args.definition}")
    if args.definition == "toolbox" and args.hp_filter is not None:
        raise _UsageError("--hp-filter does not apply to --definition toolbox (its feature is the Sobel magnitude)")
    if args.definition == "zhou" and args.map:
        raise _UsageError("--map: Zhou's global SCC has no map (use --definition windowed or toolbox)")


def _run(args: argparse.Namespace) -> int:
    _check_definition(args)
    try:
        _cli_io.check_readers()
    except _cli_io.MissingReaderError as e:
        raise _UsageError(str(e)) from None
    _prepare_outputs(args)
    _use_compilation_cache(args)
    extra_errors: List[str] = []
    try:
        pairs, folders = _collect_pairs(args.pred, args.target)
    except _UsageError as e:
        if not args.json:
            raise
        pairs, folders, extra_errors = [], True, [str(e)]
    mean = _score_pairs(pairs, args, folders) if pairs else None
    return _report(pairs, mean, args, extra_errors)


def _exit_code(code: Any) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the ``jax-scc`` command.

    Args:
      argv: the arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
      The exit status: 0 when every pair was scored, 2 for bad input (including
      a bad command line), 1 for an internal error.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (status 2)
        return _exit_code(e.code)
    try:
        return _run(args)
    except _UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # writing --csv or --map outputs
        name = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"{PROG}: error: {name}{e.strerror or e}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: say so, with the traceback
        print(f"{PROG}: internal error (please report it with the traceback below)",
              file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


def console_main() -> None:
    """The ``jax-scc`` and ``python -m jax_scc`` entry point: :func:`main`, then
    the process ends without tearing the interpreter down (flushing stdout and
    stderr first). JAX's teardown adds about 0.2 s to every run, as much as
    scoring 30 images on a CPU; every output has been written by then."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
