"""Speed of jax_scc (each ``method``) side by side with torchmetrics and sewar.

Run (needs the ``bench`` extra: torch==2.13.0, torchmetrics, sewar, matplotlib):

    python benchmarks/run.py                 # full run, a few minutes on 2 CPU cores
    python benchmarks/run.py --quick         # tiny shapes, to check that it works

Everything runs in this one process and is interleaved: each round times every
implementation once, in turn, so that a noisy shared machine slows them alike;
the reported figure is the median over rounds, after a warm-up call, with
``block_until_ready()`` for JAX. Inputs are float32 in [0, 1], random with
flat regions (16 grey levels plus noise), default filter, ``window_size=8``
unless the case says otherwise.

Writes ``benchmarks/results/<backend>.json`` and ``<backend>.md`` (the tables)
and ``<backend>-size.png`` / ``<backend>-window.png`` (the scaling plots).
Nothing here is asserted: speed is measured, never tested.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402

import jax_scc  # noqa: E402

METHODS = ("slices", "conv")
SHAPES = [(1, 1, 512, 512), (16, 1, 512, 512), (32, 3, 128, 128), (8, 3, 1024, 1024)]
SIZES = [64, 128, 256, 512, 1024, 2048]
WINDOWS = [3, 4, 8, 16, 32]


def make_pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    target = np.round(rng.uniform(size=shape).astype(np.float32) * 15) / 15
    preds = target + np.float32(0.05) * rng.standard_normal(shape, dtype=np.float32)
    return preds.astype(np.float32), target.astype(np.float32)


def jax_runner(method: str, window_size: int) -> Callable:
    fn = jax.jit(
        lambda p, t: jax_scc.spatial_correlation_coefficient(
            p, t, window_size=window_size, reduction="none", method=method
        )
    )

    def setup(p, t):
        jp, jt = jax.device_put(p), jax.device_put(t)
        return lambda: fn(jp, jt).block_until_ready()

    return setup


def torchmetrics_runner(window_size: int) -> Optional[Callable]:
    try:
        import torch
        from torchmetrics.functional.image import spatial_correlation_coefficient as tm_scc
    except ImportError:
        return None

    # On a GPU machine torchmetrics runs on the GPU too (CUDA tensors, synchronised).
    cuda = jax.default_backend() == "gpu" and torch.cuda.is_available()

    def setup(p, t):
        tp, tt = torch.from_numpy(p), torch.from_numpy(t)
        if not cuda:
            return lambda: tm_scc(tp, tt, window_size=window_size, reduction="none")
        tp, tt = tp.cuda(), tt.cuda()

        def call():
            out = tm_scc(tp, tt, window_size=window_size, reduction="none")
            torch.cuda.synchronize()
            return out

        return call

    return setup


def sewar_runner(window_size: int) -> Optional[Callable]:
    try:
        from sewar.full_ref import scc as sewar_scc
    except ImportError:
        return None

    def setup(p, t):
        # sewar scores one (H, W) or (H, W, C) image at a time, in float64.
        pairs = [(np.moveaxis(a, 0, -1), np.moveaxis(b, 0, -1)) for a, b in zip(p, t)]
        return lambda: [sewar_scc(b, a, ws=window_size) for a, b in pairs]

    return setup


def time_case(shape, window_size, rounds, include, log) -> Dict[str, dict]:
    """Median seconds per call of every implementation, interleaved over rounds."""
    p, t = make_pair(shape)
    runners = {f"jax_scc[{m}]": jax_runner(m, window_size) for m in METHODS}
    if "torchmetrics" in include:
        runners["torchmetrics"] = torchmetrics_runner(window_size)
    if "sewar" in include:
        runners["sewar"] = sewar_runner(window_size)
    calls = {name: setup(p, t) for name, setup in runners.items() if setup is not None}
    first = {}
    for name, call in calls.items():  # warm-up (and, for JAX, compilation)
        start = time.perf_counter()
        call()
        first[name] = time.perf_counter() - start
    times: Dict[str, List[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    mpix = float(np.prod(shape)) / 1e6
    out = {}
    tm = np.median(times["torchmetrics"]) if "torchmetrics" in times else None
    for name, ts in times.items():
        med = float(np.median(ts))
        out[name] = {
            "median_s": med,
            "mpix_per_s": mpix / med,
            "vs_torchmetrics": (tm / med) if tm else None,
            "first_call_s": first[name],
            "rounds": len(ts),
        }
    log(
        f"  {shape} w={window_size}: "
        + ", ".join(f"{k} {v['mpix_per_s']:.1f} Mpix/s" for k, v in out.items())
    )
    return out


def memory_report(shape, method, window_size=8) -> dict:
    """Compile time, XLA's memory analysis and peak RSS, in a fresh process."""
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(HERE.parent)!r})
import jax, jax.numpy as jnp, numpy as np, jax_scc
shape = {tuple(shape)!r}
p = jnp.asarray(np.random.default_rng(0).uniform(size=shape).astype(np.float32)); t = p[::-1]
f = jax.jit(lambda a, b: jax_scc.spatial_correlation_coefficient(a, b, window_size={window_size}, reduction='none', method={method!r}))
start = time.perf_counter(); compiled = f.lower(p, t).compile(); compile_s = time.perf_counter() - start
ma = compiled.memory_analysis()
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
compiled(p, t).block_until_ready()
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(compile_s=compile_s,
    temp_bytes=getattr(ma, 'temp_size_in_bytes', None), argument_bytes=getattr(ma, 'argument_size_in_bytes', None),
    output_bytes=getattr(ma, 'output_size_in_bytes', None), peak_rss_bytes=rss1 * 1024, rss_before_run_bytes=rss0 * 1024)))
"""
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900
    )
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(results) -> str:
    lines = [
        f"Backend: {results['backend']} ({results['device']}), jax {results['jax']}, "
        f"{results['cpu_count']} CPU cores, {results['date']}.",
        "",
        "Mpix/s (median over rounds, interleaved), and the ratio to torchmetrics:",
        "",
    ]
    names = list(next(iter(results["shapes"].values())).keys())
    lines.append("| shape (w=8) | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for shape, row in results["shapes"].items():
        cells = []
        for n in names:
            r = row.get(n)
            if r is None:
                cells.append("–")
            elif r["vs_torchmetrics"] and n != "torchmetrics":
                cells.append(f"{r['mpix_per_s']:.1f} ({r['vs_torchmetrics']:.1f}×)")
            else:
                cells.append(f"{r['mpix_per_s']:.1f}")
        lines.append(f"| {shape} | " + " | ".join(cells) + " |")
    for key, title in (("sizes", "image size (1 image)"), ("windows", "window size (4×1×512×512)")):
        lines += ["", f"Scaling with {title}, Mpix/s:", ""]
        lines.append(f"| {key[:-1]} | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for k, row in results[key].items():
            lines.append(
                f"| {k} | " + " | ".join(fmt(row.get(n, {}).get("mpix_per_s")) for n in names) + " |"
            )
    lines += ["", "Compile time and memory for (8, 3, 1024, 1024), fresh process per method:", ""]
    lines.append("| method | compile s | XLA temp MiB | peak RSS MiB |")
    lines.append("|---|---|---|---|")
    for m, r in results["memory"].items():
        if "error" in r:
            lines.append(f"| {m} | error: {r['error']} | | |")
            continue
        temp = None if r.get("temp_bytes") is None else r["temp_bytes"] / 2**20
        lines.append(
            f"| {m} | {r['compile_s']:.2f} | {fmt(temp)} | {r['peak_rss_bytes'] / 2**20:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results, key, xlabel, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [int(k) for k in results[key]]
    names = sorted({n for row in results[key].values() for n in row})
    for n in names:
        ys = [results[key][str(x)].get(n, {}).get("mpix_per_s", np.nan) for x in xs]
        ax.plot(xs, ys, marker="o", label=n)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Mpix/s (higher is better)")
    ax.set_title(f"SCC throughput on {results['backend']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default=None, help="results file stem (default: backend)")
    parser.add_argument("--no-sewar", action="store_true")
    args = parser.parse_args(argv)

    backend = jax.default_backend()
    shapes, sizes, windows, win_shape = SHAPES, SIZES, WINDOWS, (4, 1, 512, 512)
    rounds = args.rounds
    mem_shape = (8, 3, 1024, 1024)
    if args.quick:
        shapes, sizes, windows = [(2, 1, 32, 32), (4, 3, 16, 16)], [16, 32], [3, 8]
        win_shape, rounds, mem_shape = (2, 1, 32, 32), 2, (2, 1, 32, 32)
    include = {"torchmetrics"} | (set() if args.no_sewar else {"sewar"})

    def log(msg):
        print(msg, flush=True)

    results = {
        "backend": backend,
        "device": str(jax.devices()[0].device_kind),
        "jax": jax.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
        "rounds": rounds,
        "shapes": {},
        "sizes": {},
        "windows": {},
        "memory": {},
    }
    total = len(shapes) + len(sizes) + len(windows)
    step = 0
    for shape in shapes:
        step += 1
        log(f"[{step}/{total}] shape {shape}")
        # sewar (float64, one image at a time) only where it finishes in seconds.
        inc = include if np.prod(shape) <= 2**22 else include - {"sewar"}
        results["shapes"][str(shape)] = time_case(shape, 8, rounds, inc, log)
    for s in sizes:
        step += 1
        log(f"[{step}/{total}] size {s}x{s}")
        results["sizes"][str(s)] = time_case((1, 1, s, s), 8, rounds, include, log)
    for w in windows:
        step += 1
        log(f"[{step}/{total}] window {w}")
        results["windows"][str(w)] = time_case(win_shape, w, rounds, include, log)
    for m in METHODS:
        log(f"memory and compile time, method={m}, shape {mem_shape}")
        results["memory"][m] = memory_report(mem_shape, m)
    results["peak_rss_this_process_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or backend
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / f"{stem}.md").write_text(table)
    try:
        plot(results, "sizes", "image side (pixels)", args.out / f"{stem}-size.png")
        plot(results, "windows", "window size", args.out / f"{stem}-window.png")
    except ImportError:
        log("matplotlib is not installed: no plots")
    print(table)
    return results


if __name__ == "__main__":
    main()
