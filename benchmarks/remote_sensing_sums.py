"""Global sums on large bands: the remote-sensing SCCs in float32 against float64.

The toolbox sCC and Zhou's global SCC sum products over a whole band (67M
pixels for 8192 x 8192). This script scores one synthetic band pair (a
16-bit-like scene: an offset, smooth shading, fields with edges, texture; the
prediction blurred and noisy) with

* jax_scc (float32, double-float band sums: ``pansharpening_scc``, ``global_scc``),
* the same float32 features summed with XLA's plain float32 ``jnp.sum``,
* a float64 NumPy evaluation of the definitions (the reference),

and reports each score's error against the reference, the relative error of
the band sums themselves, and the time of each float32 variant (jitted,
median of ``--repeats`` calls after a warm-up, ``block_until_ready``).

Run:  python benchmarks/remote_sensing_sums.py [--size 8192] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def scene(size: int, seed: int = 0):
    """A (1, 1, size, size) float32 target and prediction."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    fields = rng.integers(0, 6, (size // 64 + 1, size // 64 + 1)).astype(np.float32)
    fields = np.kron(fields, np.ones((64, 64), np.float32))[:size, :size]
    target = 1000 + 300 * np.sin(3 * x) * np.cos(2 * y) + 40 * fields
    target += rng.normal(0, 5, target.shape).astype(np.float32)
    blurred = (target + np.roll(target, 1, 0) + np.roll(target, 1, 1) + np.roll(target, (1, 1), (0, 1))) / 4
    pred = blurred + rng.normal(0, 3, target.shape).astype(np.float32)
    return pred.astype(np.float32)[None, None], target.astype(np.float32)[None, None]


def reference_sums(pred, target):
    """Float64 band sums of both definitions: {name: value}."""
    import reference_remote_sensing as R

    f = R.sobel_magnitude(pred[0, 0])
    g = R.sobel_magnitude(target[0, 0])
    out = {"toolbox FG": np.sum(f * g), "toolbox FF": np.sum(f * f), "toolbox GG": np.sum(g * g)}
    del f, g
    x = R._high_pass(pred[0, 0].astype(np.float64), R.LAPLACIAN)
    x -= x.mean()
    y = R._high_pass(target[0, 0].astype(np.float64), R.LAPLACIAN)
    y -= y.mean()
    out.update({"zhou C": np.sum(x * y), "zhou Vp": np.sum(x * x), "zhou Vt": np.sum(y * y)})
    out["toolbox"] = out["toolbox FG"] / np.sqrt(out["toolbox FF"] * out["toolbox GG"])
    out["zhou"] = out["zhou C"] / np.sqrt(out["zhou Vp"] * out["zhou Vt"])
    return out


def float32_sums(pred, target, accurate: bool):
    """The same sums from jax_scc's float32 features, accurate or plain."""
    import jax
    import jax.numpy as jnp

    from jax_scc._src import remote_sensing as rs

    def totals(*xs):  # as the library groups them: one pass per group
        if accurate:
            return rs.accurate_sums(*xs)
        return tuple(jnp.sum(x, axis=(-2, -1)) for x in xs)

    @jax.jit
    def sums(p, t):
        f, g, _ = rs.features(p, t, rs.make_rs_config("toolbox"))
        out = dict(zip(("toolbox FG", "toolbox FF", "toolbox GG"), totals(f * g, f * f, g * g)))
        x, y, _ = rs.features(p, t, rs.make_rs_config("zhou"))
        n = x.shape[-1] * x.shape[-2]
        sum_x, sum_y = totals(x, y)
        x, y = x - sum_x[..., None, None] / n, y - sum_y[..., None, None] / n
        out.update(zip(("zhou C", "zhou Vp", "zhou Vt"), totals(x * y, x * x, y * y)))
        return {k: v[0, 0] for k, v in out.items()}

    return sums


def timed(fn, *args, repeats: int) -> float:
    import jax

    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp

    import jax_scc

    pred, target = scene(args.size)
    ref = reference_sums(pred, target)
    p, t = jnp.asarray(pred), jnp.asarray(target)
    result = {"size": args.size, "jax": jax.__version__, "backend": jax.default_backend(), "sums": {}, "scores": {}, "seconds": {}}
    for name, accurate in (("double-float", True), ("plain float32", False)):
        fn = float32_sums(pred, target, accurate)
        got = {k: float(v) for k, v in fn(p, t).items()}
        # jax_scc high-passes with the filter scaled by a power of two (exact).
        from jax_scc._src import highpass
        from jax_scc._src.config import DEFAULT_HP_FILTER

        scale = highpass.normalised(DEFAULT_HP_FILTER)[1][1] / DEFAULT_HP_FILTER[1][1]
        for k in ("zhou C", "zhou Vp", "zhou Vt"):
            got[k] /= scale**2
        result["sums"][name] = {k: abs(got[k] - ref[k]) / abs(ref[k]) for k in got}
        scores = {
            "toolbox": got["toolbox FG"] / np.sqrt(got["toolbox FF"] * got["toolbox GG"]),
            "zhou": got["zhou C"] / np.sqrt(got["zhou Vp"] * got["zhou Vt"]),
        }
        result["scores"][name] = {k: abs(v - ref[k]) for k, v in scores.items()}
        result["seconds"][f"sums, {name}"] = timed(fn, p, t, repeats=args.repeats)
    toolbox = jax.jit(jax_scc.pansharpening_scc)
    zhou = jax.jit(jax_scc.global_scc)
    result["jax_scc"] = {"toolbox": float(toolbox(p, t)), "zhou": float(zhou(p, t))}
    result["reference"] = {"toolbox": float(ref["toolbox"]), "zhou": float(ref["zhou"])}
    result["scores"]["jax_scc"] = {k: abs(result["jax_scc"][k] - ref[k]) for k in ("toolbox", "zhou")}
    result["seconds"]["pansharpening_scc"] = timed(toolbox, p, t, repeats=args.repeats)
    result["seconds"]["global_scc"] = timed(zhou, p, t, repeats=args.repeats)
    plain = jax.jit(lambda x: jnp.sum(x, axis=(-2, -1)))
    from jax_scc._src.remote_sensing import accurate_sum

    result["seconds"]["one sum, jnp.sum"] = timed(plain, t, repeats=args.repeats)
    result["seconds"]["one sum, double-float"] = timed(jax.jit(accurate_sum), t, repeats=args.repeats)

    print(f"{args.size}x{args.size} band, jax {jax.__version__} on {jax.default_backend()}")
    print("relative error of the band sums against float64:")
    for name, errs in result["sums"].items():
        print(f"  {name:14s} " + "  ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    print("absolute error of the scores against float64 (reference: "
          + ", ".join(f"{k} {v:.7f}" for k, v in result["reference"].items()) + "):")
    for name, errs in result["scores"].items():
        print(f"  {name:14s} " + "  ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    print("seconds (median of %d after warm-up):" % args.repeats)
    for name, s in result["seconds"].items():
        print(f"  {name:28s} {s:.3f}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
