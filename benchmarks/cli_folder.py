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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20 pairs of 128x128, 3 rounds")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--wait-idle", type=float, default=0.0, metavar="SECONDS",
        help="on a shared machine: before each round, wait up to SECONDS for a second in "
        "which other processes use under 0.25 of a core (the load during each timed run "
        "is recorded either way)",
    )
    args = parser.parse_args(argv)
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
