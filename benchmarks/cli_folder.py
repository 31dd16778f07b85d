"""Is scoring the bottleneck of ``jax-scc PRED_DIR TARGET_DIR``? Decoding against the command.

Run (needs the ``cli`` and ``examples`` extras: imageio, tifffile, scikit-image):

    python benchmarks/cli_folder.py              # 200 pairs of 512x512, 5 rounds
    python benchmarks/cli_folder.py --wait-idle 90   # the same, each round started on
                                                     # an idle machine (the committed run)
    python benchmarks/cli_folder.py --quick      # 20 pairs of 128x128, 3 rounds

Makes 200 pairs of 512x512 16-bit grey PNGs in a temporary folder: random
crops of scikit-image's photographs (camera, astronaut, moon, brick, grass,
gravel, retina, hubble_deep_field), spread over the 16-bit range; each
prediction is its target blurred, noised and re-quantised. Then, in one process
and interleaved round by round (after one warm-up round, which also compiles),
it times:

* ``decode x1``: reading all 400 files with the command's own reader
  (``jax_scc._cli_io.read_image``, imageio/Pillow), one after the other;
* ``decode xN``: the same with the command's decoding thread pool (N threads,
  the command's default), i.e. the best the command could do if scoring were free;
* ``command``: ``jax_scc.cli.main([PRED_DIR, TARGET_DIR, "--no-progress"])``
  in-process (compiled functions are cached across calls, so a round does not
  compile; the warm-up round did);

and reports medians over the rounds, the ratio command / decode, the time per
image, this process's CPU time for each (on one free core, command CPU = decode
CPU + scoring CPU) and how many cores other processes used meanwhile (from
/proc/stat: the machine may be shared). The command also runs once as a subprocess (``python -m jax_scc``), which
adds the interpreter start, ``import jax`` and the one compilation.

Writes ``benchmarks/results/cli-<backend>.json`` and ``.md``. Nothing is asserted.

``--mixed`` runs the mixed-size benchmark instead (``cli-mixed-<backend>.json``
and ``.md``): 30 RGB PNG pairs of 30 different sizes (160-460 pixels a side,
cut from scikit-image's astronaut, chelsea and coffee) against 30 pairs of one
size (320x320) and against decoding only, every command a fresh process
(``python -m jax_scc --json``), a first run with an empty compilation cache
and a second run with the cache it left, round by round; the canvas padding of
the ladders; and the function on the 30 pairs as one padded batch
(``pad_to_canvas``, ``sizes=``) against one call per image. ``--baseline
PYTHONPATH`` also times another checkout's command once.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional, Tuple
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402

from jax_scc import _cli_io, cli  # noqa: E402

PHOTOS = ("camera", "astronaut", "moon", "brick", "grass", "gravel", "retina", "hubble_deep_field")


def _grey_photos():
    from skimage import color, data

    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        if img.ndim == 3:
            img = color.rgb2gray(img[..., :3])
        else:
            img = img / 255.0
        out.append(img.astype(np.float64))
    return out


def make_folders(root: Path, pairs: int, size: int, seed: int = 0):
    """Writes ``pairs`` 16-bit PNG pairs under root/pred and root/target."""
    import imageio.v3 as iio
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    photos = _grey_photos()
    pred_dir, target_dir = root / "pred", root / "target"
    pred_dir.mkdir()
    target_dir.mkdir()
    for k in range(pairs):
        img = photos[k % len(photos)]
        if min(img.shape) < size:
            raise ValueError(f"photo {PHOTOS[k % len(photos)]} is smaller than {size}")
        y = rng.integers(0, img.shape[0] - size + 1)
        x = rng.integers(0, img.shape[1] - size + 1)
        crop = img[y : y + size, x : x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        target = np.clip(crop + 0.002 * rng.standard_normal(crop.shape), 0, 1)
        pred = gaussian_filter(target, rng.uniform(0.5, 2.0))
        pred = pred + rng.uniform(0.01, 0.05) * rng.standard_normal(pred.shape)
        levels = rng.choice([256, 1024, 65536])
        pred = np.round(np.clip(pred, 0, 1) * (levels - 1)) / (levels - 1)
        name = f"img_{k:04d}.png"
        iio.imwrite(target_dir / name, np.round(target * 65535).astype(np.uint16))
        iio.imwrite(pred_dir / name, np.round(pred * 65535).astype(np.uint16))
    return pred_dir, target_dir


def decode_all(files, workers: int) -> int:
    """Reads every file with the command's reader; returns the bytes decoded."""
    if workers == 1:
        return sum(_cli_io.read_image(str(f)).nbytes for f in files)
    with ThreadPoolExecutor(workers) as pool:
        return sum(a.nbytes for a in pool.map(lambda f: _cli_io.read_image(str(f)), files))


def run_command(pred_dir, target_dir) -> float:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main([str(pred_dir), str(target_dir), "--no-progress"])
    if status != 0:
        raise RuntimeError(f"jax-scc exited with status {status}")
    return float(out.getvalue())


# --- images of many sizes (--mixed) ---------------------------------------------------------

MIXED_PHOTOS = ("astronaut", "chelsea", "coffee")


def mixed_sizes(n: int = 30, seed: int = 0):
    """``n`` different (height, width) sizes between 160 and 460, as in
    super-resolution test sets."""
    rng = np.random.default_rng(seed)
    sizes = set()
    while len(sizes) < n:
        sizes.add((int(rng.integers(160, 461)), int(rng.integers(160, 461))))
    return sorted(sizes, key=lambda s: rng.random())


def make_mixed_folders(root: Path, sizes, seed: int = 0):
    """RGB 8-bit PNG pairs cut from scikit-image's photographs (resized to
    cover the size, then cropped); each prediction is its target blurred,
    noised and re-quantised. Returns (pred_dir, target_dir)."""
    import imageio.v3 as iio
    from skimage import data
    from skimage.filters import gaussian
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    pred_dir, target_dir = root / "pred", root / "target"
    pred_dir.mkdir(parents=True)
    target_dir.mkdir(parents=True)
    photos = [getattr(data, name)().astype(np.float64) / 255 for name in MIXED_PHOTOS]
    for k, (h, w) in enumerate(sizes):
        photo = photos[k % len(photos)]
        scale = max(h / photo.shape[0], w / photo.shape[1]) * rng.uniform(1.0, 1.5)
        big = resize(photo, (int(np.ceil(photo.shape[0] * scale)), int(np.ceil(photo.shape[1] * scale))), anti_aliasing=True)
        y, x = rng.integers(0, big.shape[0] - h + 1), rng.integers(0, big.shape[1] - w + 1)
        target = big[y : y + h, x : x + w]
        pred = gaussian(target, sigma=1.0, channel_axis=-1) + rng.normal(0, 0.02, target.shape)
        name = f"{k:02d}.png"
        iio.imwrite(target_dir / name, np.clip(np.round(target * 255), 0, 255).astype(np.uint8))
        iio.imwrite(pred_dir / name, np.clip(np.round(pred * 255), 0, 255).astype(np.uint8))
    return pred_dir, target_dir


def _timed_process(argv, env) -> Tuple[float, str]:
    start = time.perf_counter()
    # Outside the repository: ``python -m`` puts the working folder first on sys.path.
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=tempfile.gettempdir())
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def _fresh_env(cache_home: Optional[Path], pythonpath: str = str(HERE.parent)):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    env.update(PYTHONPATH=pythonpath, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    env.pop("JAX_SCC_NO_CACHE", None)
    if cache_home is not None:
        env["XDG_CACHE_HOME"] = str(cache_home)
    return env


def ladder_waste(sizes):
    """Canvases and padding of three ways to bucket ``sizes``: rounded up to
    multiples of 64; a geometric ladder (ratio 2**(1/4), multiples of 8); and
    the command's plan (multiples of 64, then merged)."""

    def geometric(n):
        side = 128.0
        while _round8(side) < n:
            side *= 2 ** 0.25
        return _round8(side)

    pixels = sum(h * w for h, w in sizes)
    out = {}
    for name, bucket in (
        ("multiples of 64", lambda hw: (cli._round_up(hw[0], 64), cli._round_up(hw[1], 64))),
        ("geometric (x2^(1/4))", lambda hw: (geometric(hw[0]), geometric(hw[1]))),
    ):
        canvases = [bucket(s) for s in sizes]
        out[name] = {"canvases": len(set(canvases)), "padding": sum(h * w for h, w in canvases) / pixels - 1}
    plan = cli.plan_canvases(sizes)
    canvases = [plan[s] for s in sizes]
    out["command (64, merged)"] = {"canvases": len(set(canvases)), "padding": sum(h * w for h, w in canvases) / pixels - 1}
    return out


def _round8(x: float) -> int:
    return int(-(-int(np.ceil(x)) // 8) * 8)


def functional_mixed(pred_dir, target_dir, sizes, repeats: int = 5):
    """The function on the 30 pairs as one padded batch (``pad_to_canvas``,
    ``sizes=``) against one call per image: first call (compilation included)
    and the median of ``repeats`` warm calls; and the largest score difference."""
    import jax_scc

    names = sorted(os.listdir(target_dir))
    preds = [np.moveaxis(_cli_io.read_image(str(pred_dir / n)), -1, 0).astype(np.float32) for n in names]
    targets = [np.moveaxis(_cli_io.read_image(str(target_dir / n)), -1, 0).astype(np.float32) for n in names]
    f = jax.jit(lambda p, t, s: jax_scc.spatial_correlation_coefficient(p, t, reduction="none", sizes=s))
    one = jax.jit(lambda p, t: jax_scc.spatial_correlation_coefficient(p, t, reduction="none"))

    def batched():
        (p, s), (t, _) = jax_scc.pad_to_canvas(preds), jax_scc.pad_to_canvas(targets)
        return np.asarray(f(p, t, s))

    def each():
        return np.concatenate([np.asarray(one(p[None], t[None])) for p, t in zip(preds, targets)])

    start = time.perf_counter()
    mixed = batched()
    first_batched = time.perf_counter() - start
    start = time.perf_counter()
    alone = each()
    first_each = time.perf_counter() - start
    warm_batched, warm_each = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        batched()
        warm_batched.append(time.perf_counter() - start)
        start = time.perf_counter()
        each()
        warm_each.append(time.perf_counter() - start)
    return {
        "first_call_s": {"one padded batch": first_batched, "one call per image": first_each},
        "warm_median_s": {"one padded batch": statistics.median(warm_batched), "one call per image": statistics.median(warm_each)},
        "max_score_difference": float(np.max(np.abs(mixed - alone))),
        "scores_alone": {n: float(v) for n, v in zip(names, alone)},
    }


def mixed(args) -> dict:
    """The --mixed benchmark: every command as a fresh process, first run (empty
    compilation cache) and second run, round by round."""
    sizes = mixed_sizes(args.pairs_mixed)
    same = [(320, 320)] * len(sizes)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="jax_scc_mixed_") as tmp:
        tmp = Path(tmp)
        folders = {"mixed": make_mixed_folders(tmp / "mixed", sizes), "one size": make_mixed_folders(tmp / "same", same)}
        files = sorted(str(p) for d in folders["mixed"] for p in d.iterdir())
        decode_code = (
            "import sys\nfrom jax_scc import _cli_io\n"
            "for f in sys.argv[1:]: _cli_io.read_image(f)\n"
        )
        times: dict = {}

        def record(name, value):
            times.setdefault(name, []).append(value)

        print(f"{len(sizes)} pairs of {len(set(sizes))} sizes; rounds: {args.rounds}", flush=True)
        for r in range(args.rounds):
            if args.wait_idle:
                _wait_idle(args.wait_idle)
            busy0, own0, wall0 = _busy_cpu_s(), _own_cpu_s(), time.perf_counter()
            record("interpreter start (python -c pass)", _timed_process([python, "-c", "pass"], _fresh_env(None))[0])
            record("interpreter start + import jax", _timed_process([python, "-c", "import jax"], _fresh_env(None))[0])
            record("decode only (fresh process, 1 thread)", _timed_process([python, "-c", decode_code, *files], _fresh_env(None))[0])
            for name, (p, t) in folders.items():
                cache = tmp / f"cache-{r}-{name.replace(' ', '-')}"
                argv = [python, "-m", "jax_scc", "--json", str(p), str(t)]
                first, out = _timed_process(argv, _fresh_env(cache))
                second, _ = _timed_process(argv, _fresh_env(cache))
                record(f"{name}: first run", first)
                record(f"{name}: second run", second)
                if name == "mixed":
                    command_scores = {os.path.basename(im["pred"]): im["scc"] for im in json.loads(out)["images"]}
            # Cores other processes used during the round (the machine may be shared).
            record("other processes (cores)", (_busy_cpu_s() - busy0 - (_own_cpu_s() - own0)) / (time.perf_counter() - wall0))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()), flush=True)
        baseline = None
        if args.baseline:
            p, t = folders["mixed"]
            argv = [python, "-m", "jax_scc", "--json", str(p), str(t)]
            baseline = _timed_process(argv, _fresh_env(None, args.baseline))[0]
        functional = functional_mixed(*folders["mixed"], sizes)
    alone = functional.pop("scores_alone")
    diff = max(abs(command_scores[n] - alone[n]) for n in alone)
    med = {k: statistics.median(v) for k, v in times.items()}
    decode = times["decode only (fresh process, 1 thread)"]
    ratios = {
        "mixed / one size, first run": [a / b for a, b in zip(times["mixed: first run"], times["one size: first run"])],
        "mixed second run / decode": [a / b for a, b in zip(times["mixed: second run"], decode)],
        "one size second run / decode": [a / b for a, b in zip(times["one size: second run"], decode)],
    }
    return {
        "ratios_per_round": ratios,
        "median_ratio": {k: statistics.median(v) for k, v in ratios.items()},
        "machine": f"{_cpu_name()}, {os.cpu_count()} CPU cores; jax {jax.__version__}; {time.strftime('%Y-%m-%d')}",
        "sizes": sizes,
        "rounds": args.rounds,
        "median_s": med,
        "per_round_s": times,
        "ladders": ladder_waste(sizes),
        "baseline_s": baseline,
        "baseline": args.baseline,
        "command_vs_function_max_score_difference": diff,
        "functional": functional,
    }


def mixed_markdown(r) -> str:
    med = r["median_s"]
    decode = med["decode only (fresh process, 1 thread)"]
    lines = [
        f"# `jax-scc` on a folder of {len(r['sizes'])} RGB PNG pairs of {len(set(map(tuple, r['sizes'])))} sizes",
        "",
        f"Machine: {r['machine']}. Every command a fresh process (`python -m jax_scc --json`), "
        f"JAX on CPU; medians over {r['rounds']} rounds (`python benchmarks/cli_folder.py --mixed`). "
        "Sizes between 160 and 460 pixels a side, cut from scikit-image's astronaut, chelsea and "
        "coffee; predictions blurred, noised and re-quantised. First run: an empty compilation "
        "cache; second run: the cache the first run left.",
        "",
        "| what | first run (s) | second run (s) |",
        "|---|---|---|",
    ]
    for name in ("mixed", "one size"):
        label = "30 pairs of 30 sizes" if name == "mixed" else "30 pairs of one size (320x320)"
        lines.append(f"| {label} | {med[name + ': first run']:.2f} | {med[name + ': second run']:.2f} |")
    for name in ("decode only (fresh process, 1 thread)", "interpreter start + import jax", "interpreter start (python -c pass)"):  # noqa: E501
        lines.append(f"| {name} | {med[name]:.2f} | |")
    ratio = r["median_ratio"]
    lines += [
        "",
        "Ratios, taken within each round (the commands of a round ran back to back) and then the median over rounds:",
        "",
        f"- mixed / one size, first run: **{ratio['mixed / one size, first run']:.2f}x** (bar 2x, goal 1.3x)",
        f"- mixed, second run / (decode + interpreter start): **{ratio['mixed second run / decode']:.2f}x** (bar 1.5x); "
        f"one size, second run: {ratio['one size second run / decode']:.2f}x",
        "- the same from the medians of the times: "
        f"mixed / one size, first run {med['mixed: first run'] / med['one size: first run']:.2f}x; "
        f"mixed, second run / (decode + interpreter start): {med['mixed: second run'] / decode:.2f}x (bar 1.5x; "
        "the decode process is `python -c` reading the 60 files with the command's reader: interpreter "
        "start, `import jax_scc` (which imports jax) and decoding)",
        f"- largest difference between the command's scores and one function call per image: "
        f"{r['command_vs_function_max_score_difference']:.1e} (bar 1e-6)",
    ]
    if r.get("baseline_s"):
        lines.append(f"- the previous command (one compilation per image size, `{r['baseline']}`) on the mixed folder: {r['baseline_s']:.1f} s")
    lines += ["", "Bucketing the 30 sizes (padding: canvas pixels over image pixels, minus 1):", "",
              "| ladder | canvases (compilations) | padding |", "|---|---|---|"]
    for name, v in r["ladders"].items():
        lines.append(f"| {name} | {v['canvases']} | {100 * v['padding']:.0f}% |")
    fn = r["functional"]
    lines += [
        "",
        "The function on the same 30 pairs (in one process; float32 RGB):",
        "",
        "| | first call, compilation included (s) | warm, median (s) |",
        "|---|---|---|",
    ]
    for name in ("one padded batch", "one call per image"):
        lines.append(f"| {name} | {fn['first_call_s'][name]:.2f} | {fn['warm_median_s'][name]:.3f} |")
    lines += ["", f"Largest score difference between the two: {fn['max_score_difference']:.1e}.", "",
              "Each round (s):", "", "| round | " + " | ".join(r["per_round_s"]) + " |",
              "|---" * (len(r["per_round_s"]) + 1) + "|"]
    for k in range(r["rounds"]):
        lines.append(f"| {k + 1} | " + " | ".join(f"{v[k]:.2f}" for v in r["per_round_s"].values()) + " |")
    lines += ["", "(The last column: cores that other processes used during the round, from /proc/stat; "
              "this 2-core machine is shared.)"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20 pairs of 128x128, 3 rounds")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--mixed", action="store_true",
                        help="the mixed-size benchmark instead: 30 RGB pairs of 30 sizes against 30 of "
                        "one size and decoding, fresh processes, first and second run")
    parser.add_argument("--pairs-mixed", type=int, default=30, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", metavar="PYTHONPATH", default=None,
                        help="with --mixed: also time the command of another checkout once")
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, metavar="SECONDS",
        help="on a shared machine: before each round, wait up to SECONDS for a second in "
        "which other processes use under 0.25 of a core (the load during each timed run "
        "is recorded either way)",
    )
    args = parser.parse_args(argv)
    if args.mixed:
        results = mixed(args)
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"cli-mixed-{jax.default_backend()}"
        (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
        table = mixed_markdown(results)
        (args.out / f"{stem}.md").write_text(table)
        print(table)
        return results
    if args.quick:
        args.pairs, args.size, args.rounds = 20, 128, 3
    args.rounds = max(3, args.rounds)
    workers = cli._default_workers()
    backend = jax.default_backend()

    with tempfile.TemporaryDirectory(prefix="jax-scc-bench-") as tmp:
        t0 = time.perf_counter()
        pred_dir, target_dir = make_folders(Path(tmp), args.pairs, args.size)
        files = sorted(pred_dir.iterdir()) + sorted(target_dir.iterdir())
        disk = sum(f.stat().st_size for f in files)
        print(f"made {args.pairs} pairs of {args.size}x{args.size} 16-bit PNGs "
              f"({disk / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s", flush=True)

        cases = {"decode x1": lambda: decode_all(files, 1)}
        if workers > 1:
            cases[f"decode x{workers}"] = lambda: decode_all(files, workers)
        cases["command"] = lambda: run_command(pred_dir, target_dir)
        times = {name: [] for name in cases}
        others = {name: [] for name in cases}
        own_cpu = {name: [] for name in cases}
        last = {}
        for r in range(args.rounds + 1):  # round 0 is the warm-up
            if args.wait_idle:
                _wait_idle(args.wait_idle)
            for name, fn in cases.items():
                busy0, own0 = _busy_cpu_s(), _own_cpu_s()
                t = time.perf_counter()
                value = fn()
                last[name] = time.perf_counter() - t
                busy, own = _busy_cpu_s() - busy0, _own_cpu_s() - own0
                if r:
                    times[name].append(last[name])
                    own_cpu[name].append(own)
                    if busy == busy:  # not NaN: /proc/stat was readable
                        others[name].append(max(0.0, busy - own) / last[name])
                if name == "command":
                    score = value
            print(f"round {r}{' (warm-up)' if r == 0 else ''}: " + ", ".join(
                f"{name} {dt:.3f} s" for name, dt in last.items())
                + (", other processes: " + ", ".join(f"{others[k][-1]:.2f}" for k in cases)
                   + " cores" if r and all(others.values()) else ""), flush=True)

        env = dict(os.environ)
        env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
        if args.wait_idle:
            _wait_idle(args.wait_idle)
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "jax_scc", str(pred_dir), str(target_dir)],
            capture_output=True, text=True, env=env, check=True,
        )
        subprocess_s = time.perf_counter() - t
        assert abs(float(proc.stdout) - score) < 1e-12

    med = {name: statistics.median(v) for name, v in times.items()}
    seq = med["decode x1"]
    par = med.get(f"decode x{workers}", seq)
    results = {
        "backend": backend,
        "device": str(jax.devices()[0].device_kind),
        "local_devices": jax.local_device_count(),
        "jax": jax.__version__,
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_name(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
        "pairs": args.pairs,
        "size": args.size,
        "png_mib": round(disk / 2**20, 1),
        "rounds": args.rounds,
        "decode_workers": workers,
        "times_s": times,
        "median_s": med,
        "own_cpu_s": own_cpu,
        "median_own_cpu_s": {name: statistics.median(v) for name, v in own_cpu.items()},
        "ratio_command_to_decode_x1": med["command"] / seq,
        "ratio_command_to_decode_xN": med["command"] / par,
        "command_ms_per_image": 1e3 * med["command"] / args.pairs,
        "decode_x1_ms_per_image": 1e3 * seq / args.pairs,
        "subprocess_s": subprocess_s,
        "other_processes_cores": {
            name: (statistics.median(v) if v else None) for name, v in others.items()
        },
        "other_processes_cores_per_round": others,
        "wait_idle_s": args.wait_idle,
        "mean_scc": score,
    }
    table = markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"cli-{backend}" + ("-quick" if args.quick else "")
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(table)
    print(table)
    return results


def _busy_cpu_s() -> float:
    """Seconds of CPU time the whole machine has spent busy (from /proc/stat), or NaN."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _wait_idle(limit_s: float) -> None:
    """Waits up to ``limit_s`` for a second in which other processes use < 0.25 core."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        busy0, own0 = _busy_cpu_s(), _own_cpu_s()
        time.sleep(1.0)
        if not (_busy_cpu_s() - busy0 - (_own_cpu_s() - own0) >= 0.25):  # NaN: cannot tell
            return


def _own_cpu_s() -> float:
    """CPU seconds used by this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def markdown(r) -> str:
    med = r["median_s"]
    n = r["pairs"]
    workers = r["decode_workers"]
    rows = [("decode all files, 1 thread", med["decode x1"])]
    if workers > 1:
        rows.append((f"decode all files, {workers} threads (the command's pool)",
                     med[f"decode x{workers}"]))
    rows.append(("`jax-scc PRED_DIR TARGET_DIR` (in-process `main`)", med["command"]))
    lines = [
        f"# `jax-scc` on a folder: {n} pairs of {r['size']}x{r['size']} 16-bit grey PNGs",
        "",
        f"Machine: {r['cpu']}, {r['cpu_count']} CPU cores; JAX backend {r['backend']} "
        f"({r['device']}, {r['local_devices']} local device(s)), jax {r['jax']}; {r['date']}.",
        f"{r['png_mib']} MiB of PNG files. Medians over {r['rounds']} interleaved rounds "
        "after a warm-up round (`python benchmarks/cli_folder.py"
        + (f" --wait-idle {r['wait_idle_s']:g}" if r["wait_idle_s"] else "") + "`).",
        "",
        "| what | wall time (s) | per image (ms) | CPU time of this process (s) |",
        "|---|---|---|---|",
    ]
    cpu = r["median_own_cpu_s"]
    for (name, t), key in zip(rows, list(med)):
        lines.append(f"| {name} | {t:.3f} | {1e3 * t / n:.2f} | {cpu[key]:.2f} |")
    lines += [
        "",
        f"- command / decode (1 thread): **{r['ratio_command_to_decode_x1']:.2f}x** (goal: at most 1.3x)",
    ]
    if workers > 1:
        lines.append(f"- command / decode ({workers} threads): {r['ratio_command_to_decode_xN']:.2f}x")
    lines += [
        f"- the command decodes with {workers} thread(s) (its default on this machine)",
        f"- the command as a fresh process (`python -m jax_scc`, once: interpreter start, "
        f"`import jax`, one compilation included): {r['subprocess_s']:.2f} s",
        f"- mean SCC over the {n} pairs: {r['mean_scc']:.6f}",
        *( [f"- before each round the benchmark waited (up to {r['wait_idle_s']:.0f} s) for "
            "other processes to leave the CPU idle"] if r["wait_idle_s"] else [] ),
        "- CPU used by other processes during the timed runs (median, in cores; the "
        "machine is shared): " + ", ".join(
            f"{name} {v:.2f}" for name, v in r["other_processes_cores"].items() if v is not None),
        "",
        "Each round (wall time in s, and the cores other processes used meanwhile):",
        "",
        "| round | " + " | ".join(r["times_s"]) + " | command / decode x1 |",
        "|---|" + "---|" * (len(r["times_s"]) + 1),
    ]
    per_round = r["other_processes_cores_per_round"]
    for i in range(r["rounds"]):
        cells = []
        for name, ts in r["times_s"].items():
            load = per_round.get(name) or []
            cells.append(f"{ts[i]:.3f}" + (f" ({load[i]:.2f})" if i < len(load) else ""))
        ratio = r["times_s"]["command"][i] / r["times_s"]["decode x1"][i]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    lines += [
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
