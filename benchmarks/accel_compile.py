"""What the accelerator compilers make of jax_scc, with no accelerator attached.

XLA compiles a program for an NVIDIA H200 or a TPU on this CPU machine
("deviceless" ahead-of-time compilation, ``../shared/accel/README.md``), and
the compiled object reports what the device would do: its temporaries
(``memory_analysis()``), the optimized HLO (fusions, loops, library calls) and
a count of the bytes and flops its instructions touch. These are **compiler
estimates, not measurements**: they say how many bytes a program moves through
HBM, which is what bounds an SCC program on these devices (the implied
throughput is ``bandwidth / bytes per pixel``), not how fast its kernels run.

Set-up (once; the venvs live outside the project, under the user's cache)::

    python benchmarks/accel_compile.py --setup

Run (the driver starts one worker process per platform, in its venv)::

    python benchmarks/accel_compile.py                    # everything: about 30-60 min on 2 cores
    python benchmarks/accel_compile.py --platforms h200 --programs forward --shapes 8x3x1024x1024

Figures per platform, method, program and shape:

* ``bytes/px``: bytes accessed per input pixel (``N*C*H*W``). GPU: XLA's
  generic cost counter (``HloCostAnalysis``) over the optimized module, plus
  the operands and results of library calls (cuDNN convolutions), which it
  counts as zero. TPU: the TPU compiler's own ``cost_analysis()``; it does
  not see inside a Pallas (Mosaic) kernel (``kernels``: how many the program
  calls), and counts what the kernel declares (``pl.CostEstimate``): its
  operands and results as bytes (each read or written once: the kernel's
  blocks cover each array once), and as flops the element operations of its
  traced tile function, halo included (``kernel.flops_per_pixel``). The
  compiler's time estimate for a kernel prices those as it prices XLA's
  flops, and does not model the kernel's shifts of unaligned tiles. XLA counts
  a while loop's body once, so a program with loops is flagged (``loops``)
  and its figure is a lower bound; every accelerator program of ``auto`` is
  loop-free. Reading both inputs once is 8 bytes/px: a figure below that is an
  undercount.
* ``flops/px``, ``temp``: temporaries as a multiple of one input
  (``memory_analysis().temp_size_in_bytes / (4*N*C*H*W)``), ``fusions``
  (``fusion(`` instructions of the ENTRY computation), ``convs`` (library
  convolutions), ``compile_s`` (lower + compile, seconds), and the HBM-bound
  throughput ``bandwidth / bytes`` in Gpix/s (H200 4.8 TB/s, v6e 1.6 TB/s,
  v5e 0.82 TB/s). TPU also reports its own time estimate (``tpu_ms``:
  roofline-like, it prices a kernel by the flops the kernel declares) and
  ``cycles/px``: the TPU compiler's cycle estimates of the program's XLA
  operations (``estimated_cycles`` in their configurations) plus, for Pallas
  kernels, which it gives none, their own schedule: the bundles of each
  kernel's final LLO (one per cycle), those in the tile loops times their
  trips, times the grid steps (``LIBTPU_INIT_ARGS`` dumps them to a temporary
  folder). Both are static: no stalls, no clock (cycles at ~1.5-2 GHz).

Writes ``benchmarks/results/accel-compile.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ACCEL = ROOT.parent / "shared" / "accel"
RESULTS = HERE / "results"

PLATFORMS = {
    # name: (venv kind, topology, bandwidth bytes/s)
    "h200": ("gpu", None, 4.8e12),
    "v6e": ("tpu", "v6e:2x2", 1.6e12),
    "v5e": ("tpu", "v5e:2x2", 0.82e12),
}
PROGRAMS = ("forward", "map", "value_and_grad")
SHAPES = ((8, 3, 1024, 1024), (64, 1, 256, 256))
METHODS = ("auto", "slices", "conv")  # auto: direct (w=8) on GPU; the Pallas kernel (forward), slices (gradient) on TPU


def _jax_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("jax")


def venv(kind: str) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / f"jax-scc-accel-{kind}-{_jax_version()}"


def setup() -> None:
    """Creates the two compile-only venvs (GPU: jax's CUDA plugin without the
    NVIDIA libraries; TPU: jax[tpu] with libtpu, ~1.3 GB)."""
    v = _jax_version()
    packages = {
        "gpu": [f"jax=={v}", f"jaxlib=={v}", f"jax-cuda12-plugin=={v}", f"jax-cuda12-pjrt=={v}", "numpy"],
        "tpu": [f"jax[tpu]=={v}", "numpy"],
    }
    for kind, pkgs in packages.items():
        env = venv(kind)
        if not (env / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([str(env / "bin" / "pip"), "install", "-q", *pkgs], check=True)
        print(f"{kind}: {env}")


# --- the worker (runs inside a platform's venv) ---------------------------------


def _entry_counts(text: str) -> dict:
    """Fusions, library convolutions and loops of the ENTRY computation."""
    entry = text[text.index("\nENTRY ") :]
    entry = entry[: entry.index("\n}\n") + 2] if "\n}\n" in entry else entry
    return {
        "fusions": len(re.findall(r"\bfusion\(", entry)),
        "convs": len(re.findall(r'custom_call_target="__cudnn\$conv', text)) + len(re.findall(r"= [^ ]+ convolution\(", entry)),
        "loops": len(re.findall(r"\bwhile\(", text)),
        "kernels": len(re.findall(r'custom_call_target="tpu_custom_call"', entry)),
    }


def _xla_cycles(text: str) -> float:
    """The TPU compiler's own cycle estimates of the program's XLA operations
    (``estimated_cycles`` in their backend configurations)."""
    return float(sum(int(c) for c in re.findall(r'"estimated_cycles":"(\d+)"', text)))


def _kernel_cycles(text: str, llo_dir: Path, seen: set, shape, program: str) -> float:
    """Cycles of the program's Pallas kernels by their own schedule: the
    bundles (one per cycle) of each kernel's final LLO, those inside the tile
    loops times their trip counts, times the grid steps. A static count: no
    stalls (the kernels' DMAs are pipelined), no clock."""
    from jax_scc._src.config import make_config
    from jax_scc._src.execution import kernel

    names = re.findall(r"%(\S+) = [^\n]*custom_call_target=\"tpu_custom_call\"", text)
    if not names:
        return 0.0
    files = [f for f in llo_dir.glob("*final_bundles.txt") if f not in seen and "schedule-analysis" not in f.name]
    seen.update(llo_dir.glob("*"))
    job = kernel.Job("gradient", (True, False)) if program == "value_and_grad" else kernel.Job(
        "map" if program == "map" else "scores")
    n, c, h, w_img = shape
    g = kernel._Geometry(h, w_img, make_config(), job)
    # Mosaic drops loops of one trip; the others nest rows of tiles, then tiles.
    trips = [t for t in (g.band // g.tile[0], g.cols // g.tile[1]) if t > 1]
    total = 0.0
    for f in files:
        if not any(f"-{name}-" in f.name for name in names):
            continue
        for line in f.read_text().splitlines():
            m = re.match(r"\s*0x[0-9a-f]+\s+(?:L[BHE]|PB|PF)?\s*:\s*(>*)\s*\{", line)
            if m:
                depth = len(m.group(1))
                weight = 1
                for t in trips[:depth]:
                    weight *= t
                total += weight
    return total * n * c * g.bands


def _gpu_cost(compiled) -> tuple:
    """(bytes, flops) of the optimized GPU module: XLA's counter plus library calls' operands."""
    import jax
    from jax._src.lib import _jax

    module = compiled.runtime_executable().hlo_modules()[0]
    cost = _jax.hlo_module_cost_analysis(jax.devices("cpu")[0].client, module)
    extra = 0
    text = compiled.as_text()
    for line in text.splitlines():
        if "custom-call(" in line and "__cudnn$conv" in line:
            # result tuple and operands: count every f32[...] shape on the line once
            for dims in re.findall(r"f32\[([0-9,]*)\]", line):
                size = 4
                for d in filter(None, dims.split(",")):
                    size *= int(d)
                extra += size
    return float(cost.get("bytes accessed", 0.0)) + extra, float(cost.get("flops", 0.0))


def _program(name: str, method: str):
    import jax

    import jax_scc

    kw = dict(method=method)
    if name == "forward":
        return lambda p, t: jax_scc.spatial_correlation_coefficient(p, t, **kw)
    if name == "map":
        return lambda p, t: jax_scc.scc_map(p, t, **kw)
    if name == "value_and_grad":
        return jax.value_and_grad(lambda p, t: 1.0 - jax_scc.spatial_correlation_coefficient(p, t, **kw))
    raise ValueError(name)


def worker(platform: str, programs, methods, shapes, out: str) -> None:
    import jax
    import jax.numpy as jnp
    from jax.experimental import topologies
    from jax.sharding import SingleDeviceSharding

    kind, topology, bandwidth = PLATFORMS[platform]
    if kind == "gpu":
        topo = topologies.get_topology_desc(
            platform="cuda", target_config=(ACCEL / "h200.txtpb").read_text(), topology="1x1x1"
        )
    else:
        topo = topologies.get_topology_desc(topology_name=topology, platform="tpu")
    device = topo.devices[0]
    llo_dir = Path(os.environ["JAX_SCC_LLO_DIR"]) if os.environ.get("JAX_SCC_LLO_DIR") else None
    seen = set(llo_dir.glob("*")) if llo_dir else set()
    rows = []
    for shape in shapes:
        pixels = 1
        for d in shape:
            pixels *= d
        x = jax.ShapeDtypeStruct(shape, jnp.float32, sharding=SingleDeviceSharding(device))
        for program in programs:
            for method in methods:
                row = dict(platform=platform, program=program, method=method, shape=list(shape))
                try:
                    start = time.perf_counter()
                    compiled = jax.jit(_program(program, method)).lower(x, x).compile()
                    row["compile_s"] = time.perf_counter() - start
                    text = compiled.as_text()
                    row.update(_entry_counts(text))
                    row["temp"] = compiled.memory_analysis().temp_size_in_bytes / (4 * pixels)
                    if kind == "gpu":
                        nbytes, flops = _gpu_cost(compiled)
                    else:
                        cost = compiled.cost_analysis()
                        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
                        nbytes, flops = float(cost.get("bytes accessed", 0)), float(cost.get("flops", 0))
                        seconds = cost.get("optimal_seconds")
                        row["tpu_ms"] = None if seconds is None else 1e3 * float(seconds)
                        if llo_dir is not None:
                            kernel_cycles = _kernel_cycles(text, llo_dir, seen, shape, program)
                            row["cycles_px"] = (_xla_cycles(text) + kernel_cycles) / pixels
                    row["bytes_px"] = nbytes / pixels
                    row["flops_px"] = flops / pixels
                    row["gpix_s"] = bandwidth / row["bytes_px"] / 1e9 if row["bytes_px"] else None
                except Exception as e:  # e.g. "Ran out of memory in memory space hbm"
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                print(json.dumps(row), flush=True)
                rows.append(row)
    Path(out).write_text(json.dumps(rows, indent=1))


# --- the driver -----------------------------------------------------------------


def _parse_shape(s: str):
    return tuple(int(v) for v in s.split("x"))


def _markdown(rows, header: str) -> str:
    lines = [
        header,
        "",
        "| platform | program | method | shape | bytes/px | flops/px | temp (× input) | fusions | convs | loops | kernels | compile s | HBM-bound Gpix/s | TPU estimate ms | TPU cycles/px |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shape = "×".join(str(v) for v in r["shape"])
        if "error" in r:
            lines.append(f"| {r['platform']} | {r['program']} | {r['method']} | {shape} | {r['error']} |||||||||||")
            continue
        tpu = "" if r.get("tpu_ms") is None else f"{r['tpu_ms']:.2f}"
        cycles = "" if r.get("cycles_px") is None else f"{r['cycles_px']:.2f}"
        gpix = "" if not r.get("gpix_s") else f"{r['gpix_s']:.0f}"
        lines.append(
            f"| {r['platform']} | {r['program']} | {r['method']} | {shape} | {r['bytes_px']:.0f} | "
            f"{r['flops_px']:.0f} | {r['temp']:.2f} | {r['fusions']} | {r['convs']} | {r['loops']} | {r.get('kernels', 0)} | "
            f"{r['compile_s']:.1f} | {gpix} | {tpu} | {cycles} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="store_true", help="create the compile-only venvs and exit")
    parser.add_argument("--worker", choices=sorted(PLATFORMS), help=argparse.SUPPRESS)
    parser.add_argument("--platforms", default="h200,v6e,v5e")
    parser.add_argument("--programs", default=",".join(PROGRAMS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in SHAPES))
    parser.add_argument("--out", default=str(RESULTS / "accel-compile"), help="path without suffix")
    parser.add_argument("--tpu-methods", default="auto,slices", help="methods compiled for TPU (slow compiles)")
    args = parser.parse_args(argv)
    programs = args.programs.split(",")
    shapes = [_parse_shape(s) for s in args.shapes.split(",")]
    if args.setup:
        setup()
        return 0
    if args.worker:
        worker(args.worker, programs, args.methods.split(","), shapes, args.out)
        return 0

    rows = []
    for platform in args.platforms.split(","):
        kind, _, _ = PLATFORMS[platform]
        python = venv(kind) / "bin" / "python"
        if not python.exists():
            print(f"{python} missing: run `python benchmarks/accel_compile.py --setup` first", file=sys.stderr)
            return 2
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
        methods = args.methods
        if kind == "tpu":
            env.update(TPU_SKIP_MDS_QUERY="1", TPU_WORKER_HOSTNAMES="localhost", TPU_ACCELERATOR_TYPE="v6e-4")
            # The kernels' schedules (their final LLO bundles) for the cycle counts.
            llo = tempfile.mkdtemp(prefix="jax-scc-llo-")
            env.update(JAX_SCC_LLO_DIR=llo, LIBTPU_INIT_ARGS=(
                f"--xla_jf_dump_to={llo} --xla_jf_dump_llo_text=true --xla_jf_dump_llo_pass_label_regex=final_bundles"))
            methods = ",".join(m for m in args.methods.split(",") if m in args.tpu_methods.split(","))
        part = f"{args.out}.{platform}.json"
        cmd = [str(python), __file__, "--worker", platform, "--programs", args.programs,
               "--methods", methods, "--shapes", args.shapes, "--out", part]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, env=env, check=True)
        if kind == "tpu":
            shutil.rmtree(env["JAX_SCC_LLO_DIR"], ignore_errors=True)
        rows += json.loads(Path(part).read_text())
        os.remove(part)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    header = (
        f"# Accelerator programs compiled deviceless (compiler estimates, not measurements)\n\n"
        f"jax {_jax_version()}, jax_scc at {commit}; float32 inputs, default filter, w=8; "
        "`python benchmarks/accel_compile.py`."
    )
    Path(args.out + ".json").parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1))
    Path(args.out + ".md").write_text(_markdown(rows, header))
    print(_markdown(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
