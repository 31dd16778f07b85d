"""Speed and memory of jax_scc side by side with torchmetrics and sewar.

Run (needs the ``bench`` extra: torch==2.13.0, torchmetrics, sewar, matplotlib):

    python benchmarks/run.py                  # full run, several minutes on 2 CPU cores
    python benchmarks/run.py --baseline main  # also time main's jax_scc, same run
    python benchmarks/run.py --quick          # tiny shapes, to check that it works

Everything runs in this one process and is interleaved: each round times every
implementation once, in turn, so that a noisy shared machine slows them alike;
the reported figure is the median over rounds, after a warm-up call, with
``block_until_ready()`` for JAX. Inputs are float32 in [0, 1], random with
flat regions (16 grey levels plus noise), default filter, ``window_size=8``
unless the case says otherwise.

Sections (``--sections``): ``shapes`` (forward throughput), ``sizes`` and
``windows`` (scaling), ``grad`` (the loss ``1 - SCC``: forward, and value
and gradient in ``preds`` and in both inputs, for jax_scc, each ``--baseline``
revision, the naive JAX port a user writes instead (``_naive.py``, plain
``jax.grad``; checked to agree with jax_scc first) and torchmetrics' autograd
``.backward()``; fwd+bwd over each one's own forward), ``memory`` (XLA
``memory_analysis()`` temporaries and compile time of the forward and of
``jit(grad)``, the latter also for each ``--baseline`` and the naive port,
each in a fresh process).

A full run writes ``benchmarks/results/<backend>.json`` and ``<backend>.md``
(the tables) and ``<backend>-size.png`` / ``<backend>-window.png`` (the
scaling plots); ``--quick`` writes under ``benchmarks/results/quick/`` (not
committed) unless ``--out`` says otherwise. Nothing here is asserted: speed is
measured, never tested.
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
sys.path.insert(0, str(HERE))

import jax  # noqa: E402

import jax_scc  # noqa: E402

import _naive  # noqa: E402

METHODS = ("slices", "conv")
DIRECT_UP_TO = 8
SHAPES = [(1, 1, 512, 512), (16, 1, 512, 512), (32, 3, 128, 128), (8, 3, 1024, 1024)]
SIZES = [64, 128, 256, 512, 1024, 2048]
WINDOWS = [3, 4, 8, 16, 32]
WINDOW_SHAPE = (4, 1, 512, 512)
MEMORY_SHAPES = [(1, 1, 512, 512), (8, 3, 1024, 1024), (1, 1, 8192, 8192)]
GRAD_SHAPES = [(16, 1, 512, 512), (32, 3, 128, 128), (8, 3, 1024, 1024)]
GRAD_MEMORY_SHAPES = [(16, 1, 512, 512), (8, 3, 1024, 1024)]
SECTIONS = ("shapes", "sizes", "windows", "grad", "memory")
NAIVE = "naive JAX"  # benchmarks/_naive.py: torchmetrics' steps in plain jnp
GRAD_PROGRAMS = ("forward", "fwd+bwd (preds)", "fwd+bwd (both)")


def make_pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    target = np.round(rng.uniform(size=shape).astype(np.float32) * 15) / 15
    preds = target + np.float32(0.05) * rng.standard_normal(shape, dtype=np.float32)
    return preds.astype(np.float32), target.astype(np.float32)


def jax_runner(package, method: str, window_size: int) -> Callable:
    fn = jax.jit(
        lambda p, t: package.spatial_correlation_coefficient(
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


def runners(window_size: int, include, baselines) -> Dict[str, Callable]:
    out = {f"jax_scc[{m}]": jax_runner(jax_scc, m, window_size) for m in METHODS}
    if window_size <= DIRECT_UP_TO:  # O(w) per pass: timed where it is a candidate
        out["jax_scc[direct]"] = jax_runner(jax_scc, "direct", window_size)
    for rev, package in baselines.items():
        out[f"jax_scc@{rev}[slices]"] = jax_runner(package, "slices", window_size)
    if "torchmetrics" in include:
        out["torchmetrics"] = torchmetrics_runner(window_size)
    if "sewar" in include:
        out["sewar"] = sewar_runner(window_size)
    return {k: v for k, v in out.items() if v is not None}


def time_calls(calls: Dict[str, Callable], rounds: int) -> Dict[str, dict]:
    """Median seconds per call of every callable, interleaved over rounds.

    Each round starts one callable further along: a call timed right after
    a long one (torchmetrics' backward, seconds of other memory traffic)
    runs slower (measured: a 17 ms jax_scc forward takes 14% longer), and no
    callable should always be the one that pays it.
    """
    first = {}
    for name, call in calls.items():  # warm-up (and, for JAX, compilation)
        start = time.perf_counter()
        call()
        first[name] = time.perf_counter() - start
    times: Dict[str, List[float]] = {name: [] for name in calls}
    order = list(calls)
    for r in range(rounds):
        for name in order[r % len(order):] + order[: r % len(order)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": float(np.median(ts)), "first_call_s": first[name], "rounds": len(ts)}
        for name, ts in times.items()
    }


def grad_runners(include, baselines) -> Dict[str, Callable]:
    """The loss ``1 - mean SCC`` (w=8): forward alone, and value and gradient."""

    def jax_loss(package):
        return lambda p, t: 1.0 - package.spatial_correlation_coefficient(p, t)

    def jax_setup(fn):
        def setup(p, t):
            jp, jt = jax.device_put(p), jax.device_put(t)
            return lambda: jax.block_until_ready(fn(jp, jt))

        return setup

    def jax_programs(label, package):
        loss = jax_loss(package)
        return {
            f"{label} forward": jax_setup(jax.jit(loss)),
            f"{label} fwd+bwd (preds)": jax_setup(jax.jit(jax.value_and_grad(loss))),
            f"{label} fwd+bwd (both)": jax_setup(jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))),
        }

    out = jax_programs("jax_scc", jax_scc)
    for rev, package in baselines.items():
        out.update(jax_programs(f"jax_scc@{rev}", package))
    out.update(jax_programs(NAIVE, _naive))  # what a user writes instead: torchmetrics' steps in jnp
    if "torchmetrics" in include:
        try:
            import torch
            from torchmetrics.functional.image import spatial_correlation_coefficient as tm_scc
        except ImportError:
            return out
        cuda = jax.default_backend() == "gpu" and torch.cuda.is_available()

        def tm_setup(backward, both=True):
            def setup(p, t):
                tp, tt = torch.from_numpy(p), torch.from_numpy(t)
                if cuda:
                    tp, tt = tp.cuda(), tt.cuda()

                def call():
                    a, b = tp.clone().requires_grad_(backward), tt.clone().requires_grad_(backward and both)
                    loss = 1.0 - tm_scc(a, b)
                    if backward:
                        loss.backward()
                    if cuda:
                        torch.cuda.synchronize()
                    return loss

                return call

            return setup

        out["torchmetrics forward"] = tm_setup(False)
        out["torchmetrics fwd+bwd (preds)"] = tm_setup(True, both=False)
        out["torchmetrics fwd+bwd (both)"] = tm_setup(True)
    return out


def split_grad_name(name: str):
    """``"jax_scc@abc fwd+bwd (preds)"`` -> ``("jax_scc@abc", "fwd+bwd (preds)")``."""
    for program in GRAD_PROGRAMS:
        if name.endswith(" " + program):
            return name[: -len(program) - 1], program
    return name, ""


def time_grad_case(shape, rounds, include, baselines, log) -> Dict[str, dict]:
    """Loss and gradient timings on one shape; ratios to jax_scc's forward and
    to torchmetrics' fwd+bwd, all from the same interleaved rounds."""
    p, t = make_pair(shape)
    naive, ours = _naive.check_agrees(p, t)  # the baseline computes the same score, or no timing
    log(f"  {shape}: SCC naive JAX {naive:.7f}, jax_scc {ours:.7f}")
    calls = {name: setup(p, t) for name, setup in grad_runners(include, baselines).items()}
    out = time_calls(calls, rounds)
    forward = out["jax_scc forward"]["median_s"]
    tm = out.get("torchmetrics fwd+bwd (both)", {}).get("median_s")
    mpix = float(np.prod(shape)) / 1e6
    for name, r in out.items():
        impl, program = split_grad_name(name)
        own = out.get(f"{impl} forward", {}).get("median_s")
        tm_same = out.get(f"torchmetrics {program}", {}).get("median_s")
        r["mpix_per_s"] = mpix / r["median_s"]
        r["over_jax_forward"] = r["median_s"] / forward
        r["over_own_forward"] = r["median_s"] / own if own else None
        r["vs_torchmetrics_fwd_bwd"] = tm / r["median_s"] if tm else None
        r["vs_torchmetrics_same"] = tm_same / r["median_s"] if tm_same else None
    log(f"  {shape}: " + ", ".join(f"{k} {v['median_s'] * 1e3:.0f} ms" for k, v in out.items()))
    return out


def time_case(shape, window_size, rounds, include, baselines, log) -> Dict[str, dict]:
    """Forward throughput of every implementation on one shape."""
    p, t = make_pair(shape)
    calls = {name: setup(p, t) for name, setup in runners(window_size, include, baselines).items()}
    out = time_calls(calls, rounds)
    mpix = float(np.prod(shape)) / 1e6
    tm = out.get("torchmetrics", {}).get("median_s")
    for r in out.values():
        r["mpix_per_s"] = mpix / r["median_s"]
        r["vs_torchmetrics"] = tm / r["median_s"] if tm else None
    log(f"  {shape} w={window_size}: " + ", ".join(f"{k} {v['mpix_per_s']:.1f} Mpix/s" for k, v in out.items()))
    return out


_MEMORY_CODE = """
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + '/benchmarks')
import jax, jax.numpy as jnp, jax_scc, _baseline, _naive
x = jax.ShapeDtypeStruct({shape!r}, jnp.float32)
f = lambda a, b: jax_scc.spatial_correlation_coefficient(a, b, window_size={w}, reduction='none', method={method!r})
if {grad!r}:
    lib = {{'': jax_scc, 'naive': _naive}}.get({version!r}) or _baseline.load({version!r})
    f = jax.grad(lambda a, b: 1.0 - lib.spatial_correlation_coefficient(a, b, window_size={w}), argnums=(0, 1))
start = time.perf_counter(); compiled = jax.jit(f).lower(x, x).compile(); compile_s = time.perf_counter() - start
ma = compiled.memory_analysis()
print(json.dumps(dict(compile_s=compile_s, temp_bytes=ma.temp_size_in_bytes,
                      input_bytes=x.size * 4, output_bytes=ma.output_size_in_bytes)))
"""


def memory_report(shape, method, window_size=8, grad=False, version="") -> dict:
    """Compile time and XLA's temporaries of the jitted forward (or, with
    ``grad``, of ``jit(grad)`` of the loss in both inputs, for this tree's
    jax_scc, ``version="naive"``'s port or a git revision's), in a fresh process."""
    code = _MEMORY_CODE.format(
        root=str(HERE.parent), shape=tuple(shape), w=window_size, method=method, grad=grad, version=version
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def throughput_table(rows: Dict[str, Dict[str, dict]], key_title: str) -> List[str]:
    names = list(dict.fromkeys(n for row in rows.values() for n in row))
    lines = [f"| {key_title} | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, row in rows.items():
        cells = []
        for n in names:
            r = row.get(n)
            if r is None:
                cells.append("–")
            elif r.get("vs_torchmetrics") and n != "torchmetrics":
                cells.append(f"{r['mpix_per_s']:.1f} ({r['vs_torchmetrics']:.1f}×)")
            else:
                cells.append(f"{r['mpix_per_s']:.1f}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def markdown(results) -> str:
    lines = [
        f"Backend: {results['backend']} ({results['device']}), jax {results['jax']}, "
        f"{results['cpu_count']} CPU cores, {results['date']}; medians of {results['rounds']} "
        "interleaved rounds after a warm-up.",
    ]
    if results.get("shapes"):
        lines += ["", "Forward, Mpix/s (ratio to torchmetrics), w=8:", ""]
        lines += throughput_table(results["shapes"], "shape")
    if results.get("sizes"):
        lines += ["", "Scaling with image size (one square image, w=8), Mpix/s:", ""]
        lines += throughput_table(results["sizes"], "side")
    if results.get("windows"):
        lines += ["", f"Scaling with window size ({results['window_shape']}), Mpix/s:", ""]
        lines += throughput_table(results["windows"], "window")
    if results.get("grad"):
        shapes = list(results["grad"])
        names = list(dict.fromkeys(n for row in results["grad"].values() for n in row))
        impls = list(dict.fromkeys(split_grad_name(n)[0] for n in names))
        lines += [
            "",
            "The loss `1 - SCC` (w=8): forward, and value and gradient in `preds` or in both "
            "inputs; ms per call (median of interleaved rounds), in parentheses: time over the "
            "same implementation's forward / the same program in torchmetrics (autograd) over "
            "this (how many times faster). naive JAX: torchmetrics' steps in plain jnp "
            "(`benchmarks/_naive.py`), plain `jax.grad`:",
            "",
            "| implementation | program | " + " | ".join(shapes) + " |",
            "|---|---" + "|---" * len(shapes) + "|",
        ]
        for impl in impls:
            for program in GRAD_PROGRAMS:
                name = f"{impl} {program}"
                if name not in names:
                    continue
                cells = []
                for shape in shapes:
                    r = results["grad"][shape].get(name)
                    if r is None:
                        cells.append("–")
                        continue
                    extra = []
                    if program != "forward" and r.get("over_own_forward"):
                        extra.append(f"{r['over_own_forward']:.2f}× fwd")
                    if impl != "torchmetrics" and r.get("vs_torchmetrics_same"):
                        extra.append(f"{r['vs_torchmetrics_same']:.1f}× tm")
                    ms = r["median_s"] * 1e3
                    ms = f"{ms:.0f}" if ms >= 10 else f"{ms:.2f}"
                    cells.append(ms + (f" ({', '.join(extra)})" if extra else ""))
                lines.append(f"| {impl} | {program} | " + " | ".join(cells) + " |")
    if results.get("memory"):
        lines += [
            "",
            "Under `jax.jit`, each in a fresh process: compile time and XLA temporaries "
            "(`memory_analysis()`) of the forward (`reduction='none'`, w=8) and of "
            "`jit(grad)` of the loss in both inputs (this tree's; `@REV`: a `--baseline` "
            f"revision's; {NAIVE}: the plain-jnp port's):",
            "",
            "| shape | program | compile s | temporaries MiB | × one input |",
            "|---|---|---|---|---|",
        ]
        for label, r in results["memory"].items():
            shape, method = label.split(") ", 1)
            shape += ")"
            if "error" in r:
                lines.append(f"| {shape} | {method} | error: {r['error']} | | |")
                continue
            temp = r["temp_bytes"] / 2**20
            lines.append(
                f"| {shape} | {method} | {r['compile_s']:.2f} | {temp:.1f} | "
                f"{r['temp_bytes'] / r['input_bytes']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def plot(results, key, xlabel, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [int(k) for k in results[key]]
    names = list(dict.fromkeys(n for row in results[key].values() for n in row))
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
    parser = argparse.ArgumentParser(
        description="Time jax_scc side by side with torchmetrics and sewar; write tables and plots."
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds (a smoke test)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--name", default=None, help="results file stem (default: backend)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--baseline", action="append", default=[], metavar="REV",
                        help="also time jax_scc as of this git revision (repeatable)")
    parser.add_argument("--no-sewar", action="store_true")
    args = parser.parse_args(argv)

    backend = jax.default_backend()
    shapes, sizes, windows, win_shape = SHAPES, SIZES, WINDOWS, WINDOW_SHAPE
    rounds, mem_shapes = args.rounds, MEMORY_SHAPES
    grad_shapes, grad_mem_shapes = GRAD_SHAPES, GRAD_MEMORY_SHAPES
    out_dir = args.out or HERE / "results"
    if args.quick:
        shapes, sizes, windows = [(2, 1, 32, 32), (4, 3, 16, 16)], [16, 32], [3, 8]
        win_shape, rounds, mem_shapes = (2, 1, 32, 32), 2, [(2, 1, 32, 32)]
        grad_shapes, grad_mem_shapes = [(2, 1, 32, 32)], [(2, 1, 32, 32)]
        out_dir = args.out or HERE / "results" / "quick"
    include = {"torchmetrics"} | (set() if args.no_sewar else {"sewar"})
    import _baseline

    baselines = {rev: _baseline.load(rev) for rev in args.baseline}

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
        "baselines": args.baseline,
        "window_shape": str(win_shape),
    }
    if "shapes" in args.sections:
        results["shapes"] = {}
        for shape in shapes:
            log(f"shape {shape}")
            # sewar (float64, one image at a time) only where it finishes in seconds.
            inc = include if np.prod(shape) <= 2**22 else include - {"sewar"}
            results["shapes"][str(shape)] = time_case(shape, 8, rounds, inc, baselines, log)
    if "sizes" in args.sections:
        results["sizes"] = {}
        for s in sizes:
            log(f"size {s}x{s}")
            results["sizes"][str(s)] = time_case((1, 1, s, s), 8, rounds, include, baselines, log)
    if "windows" in args.sections:
        results["windows"] = {}
        for w in windows:
            log(f"window {w}")
            results["windows"][str(w)] = time_case(win_shape, w, rounds, include, baselines, log)
    if "grad" in args.sections:
        results["grad"] = {}
        for shape in grad_shapes:
            log(f"loss and gradient, shape {shape}")
            results["grad"][str(shape)] = time_grad_case(shape, rounds, include - {"sewar"}, baselines, log)
    if "memory" in args.sections:
        results["memory"] = {}
        for shape in mem_shapes:
            for m in METHODS:
                log(f"memory and compile time, {shape}, method={m}")
                results["memory"][f"{shape} {m}"] = memory_report(shape, m)
        for shape in grad_mem_shapes:
            log(f"memory and compile time of jit(grad), {shape}")
            results["memory"][f"{shape} jit(grad)"] = memory_report(shape, "auto", grad=True)
            for rev in args.baseline:
                results["memory"][f"{shape} jit(grad) @{rev}"] = memory_report(shape, "auto", grad=True, version=rev)
            log(f"memory and compile time of jit(grad), {shape}, {NAIVE}")
            results["memory"][f"{shape} jit(grad) {NAIVE}"] = memory_report(shape, "auto", grad=True, version="naive")
    results["peak_rss_this_process_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.name or backend
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (out_dir / f"{stem}.md").write_text(table)
    try:
        if results.get("sizes"):
            plot(results, "sizes", "image side (pixels)", out_dir / f"{stem}-size.png")
        if results.get("windows"):
            plot(results, "windows", "window size", out_dir / f"{stem}-window.png")
    except ImportError:
        log("matplotlib is not installed: no plots")
    print(table)
    return results


if __name__ == "__main__":
    main()
