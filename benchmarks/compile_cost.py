"""What a new image size costs before the first result: tracing, lowering and
XLA's compilation of each public program, with the size of what is compiled.

Run (CPU; a minute or two):

    python benchmarks/compile_cost.py                      # this working tree
    python benchmarks/compile_cost.py --baseline 57415dd   # and another revision, same run
    python benchmarks/compile_cost.py --quick              # small shapes, 1 round: a smoke test

Per program (the forward ``1 - SCC`` score, ``value_and_grad`` in ``preds``
and in both inputs, and the map) and shape, for this tree, each ``--baseline``
revision and the naive JAX port a user writes instead (``_naive.py``: its
programs are its own loss, ``jax.value_and_grad`` of it and its per-pixel
map; checked first to agree with jax_scc): the seconds to trace and lower
(``jax.jit(f).lower``), the seconds XLA compiles (``.compile()``), the lines of
StableHLO handed to XLA and the fusions of the optimized program's ENTRY
computation. Versions and programs are interleaved round by round, JAX's
caches cleared before each compilation, and the medians reported. Writes
``benchmarks/results/compile-<backend>.json`` and ``.md`` (``--quick``: under
``benchmarks/results/quick/``, not committed).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jax_scc  # noqa: E402

import _naive  # noqa: E402

SHAPES = ((8, 3, 1024, 1024), (1, 1, 64, 64))
QUICK_SHAPES = ((2, 3, 64, 64), (1, 1, 32, 32))
NAIVE = "naive JAX"
PROGRAMS = ("forward", "value_and_grad (preds)", "value_and_grad (both)", "map")


def program(lib, name):
    loss = lambda p, t: 1.0 - lib.spatial_correlation_coefficient(p, t)  # noqa: E731
    if name == "forward":
        return loss
    if name == "value_and_grad (preds)":
        return jax.value_and_grad(loss)
    if name == "value_and_grad (both)":
        return jax.value_and_grad(loss, argnums=(0, 1))
    return lambda p, t: lib.scc_map(p, t)


def entry_fusions(text: str) -> int:
    entry = text[text.index("\nENTRY ") :]
    return len(re.findall(r"\bfusion\(", entry))


def measure(lib, name, shape):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    jax.clear_caches()
    start = time.perf_counter()
    lowered = jax.jit(program(lib, name)).lower(x, x)
    lowered_s = time.perf_counter() - start
    stablehlo = len(lowered.as_text().splitlines())
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    return {"lower_s": lowered_s, "compile_s": compile_s, "stablehlo_lines": stablehlo,
            "fusions": entry_fusions(compiled.as_text())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="append", default=[], metavar="REV")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--quick", action="store_true", help="small shapes, 1 round (a smoke test)")
    args = parser.parse_args(argv)
    import _baseline

    shapes, out_dir = SHAPES, args.out or HERE / "results"
    if args.quick:
        shapes, args.rounds, out_dir = QUICK_SHAPES, 1, args.out or HERE / "results" / "quick"
    rng = np.random.default_rng(0)
    target = rng.uniform(size=(2, 3, 64, 64)).astype(np.float32)
    preds = target + np.float32(0.1) * rng.standard_normal(target.shape, dtype=np.float32)
    _naive.check_agrees(preds, target)  # the naive programs compute the same score
    versions = {"this tree": jax_scc, **{rev: _baseline.load(rev) for rev in args.baseline}, NAIVE: _naive}
    order = list(versions)
    samples = {}
    for _ in range(args.rounds):
        for shape in shapes:
            for name in PROGRAMS:
                for version, lib in versions.items():
                    samples.setdefault((version, name, shape), []).append(measure(lib, name, shape))
    rows = []
    for (version, name, shape), runs in samples.items():
        row = {"version": version, "program": name, "shape": list(shape)}
        for key in runs[0]:
            row[key] = statistics.median(r[key] for r in runs)
        rows.append(row)
        print(f"{version:>10} {name:<24} {shape}: lower {row['lower_s']:.2f} s, compile {row['compile_s']:.2f} s, "
              f"{row['stablehlo_lines']} StableHLO lines, {row['fusions']} fusions", flush=True)
    backend = jax.default_backend()
    lines = [
        f"Compile cost on {backend} ({jax.devices()[0].device_kind}), jax {jax.__version__}, "
        f"{time.strftime('%Y-%m-%d')}; medians of {args.rounds} interleaved rounds, caches cleared before each "
        "(`python benchmarks/compile_cost.py`).",
        "",
        f"{NAIVE}: torchmetrics' steps in plain jnp (`benchmarks/_naive.py`), plain `jax.value_and_grad`; "
        "× naive: total seconds over the naive version's.",
        "",
        "| program | shape | version | trace + lower s | XLA compile s | total s | × naive | StableHLO lines "
        "| fusions |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    total = lambda r: r["lower_s"] + r["compile_s"]  # noqa: E731
    naive = {(r["program"], tuple(r["shape"])): total(r) for r in rows if r["version"] == NAIVE}
    for row in sorted(rows, key=lambda r: (PROGRAMS.index(r["program"]), r["shape"], order.index(r["version"]))):
        shape = "×".join(map(str, row["shape"]))
        lines.append(
            f"| {row['program']} | {shape} | {row['version']} | {row['lower_s']:.2f} | {row['compile_s']:.2f} | "
            f"{total(row):.2f} | {total(row) / naive[row['program'], tuple(row['shape'])]:.1f} | "
            f"{row['stablehlo_lines']:.0f} | {row['fusions']:.0f} |"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"compile-{backend}.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out_dir / f"compile-{backend}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
