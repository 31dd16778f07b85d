"""One prepared run on an accelerator: accuracy first, then the GPU figures.

Run it on a lent GPU machine (needs only jax with its CUDA plugin and NumPy;
torch + torchmetrics, where present, are timed too):

    bash benchmarks/gpu_check.sh OUT_DIR        # or: python benchmarks/gpu_check.py --out OUT_DIR

1. **Accuracy on the device**, for every ``method`` (``slices``, ``conv``,
   ``direct``): the map within 1e-5 and the per-sample scores within 1e-6 of
   the float64 definition (tests/reference.py, NumPy on the host) on images
   with flat regions, edges, blur and noise, windows 3, 8 and 16, NaN handling;
   and the gradient (both inputs) within 1e-5 of max|grad| of the float64
   definition's autodiff on the device. Any failure is printed and makes the
   exit status 1, and the timings still run.
2. **Timings** (medians over rounds after a warm-up, ``block_until_ready``):
   forward Gpix/s per method on (8, 3, 1024, 1024) and the issue's other shapes;
   ``value_and_grad`` of ``1 - SCC`` in both inputs; one (1, 1, 512, 512) image
   per call, inside one jitted ``lax.scan`` of 64 calls (no dispatch) and as a
   plain jitted call; w=32 against w=8; torchmetrics on CUDA tensors where
   installed.
3. **Memory and compile time**: XLA's ``memory_analysis()`` temporaries of the
   forward on (8, 3, 1024, 1024) per method, and of ``jit(grad)``; beside
   them, the deviceless H200 compile's estimates (temporaries, and the
   HBM-bound Gpix/s) from ``benchmarks/results/accel-compile.json``.

Writes ``OUT_DIR/gpu-<device>.json`` and ``.md`` (commit them as
``benchmarks/results/``); prints the table last. ``--quick`` runs tiny shapes
(to check the script itself, e.g. on a CPU).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jax_scc  # noqa: E402
import reference as ref  # noqa: E402  (NumPy only)

METHODS = ("slices", "conv", "direct")
FAILURES = []


def log(msg):
    print(msg, flush=True)


def check(ok, what):
    log(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        FAILURES.append(what)


def images(shape, seed=0):
    """``(preds, target)``: blocky scenes with flat regions and edges (16 grey
    levels), blurred and noisy predictions; float32."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    coarse = rng.integers(0, 16, size=(n, c, h // 4 + 1, w // 4 + 1)) / 15
    target = np.kron(coarse, np.ones((4, 4)))[..., :h, :w]
    blur = (target + np.roll(target, 1, -1) + np.roll(target, 1, -2) + np.roll(target, (1, 1), (-2, -1))) / 4
    preds = np.where(rng.random((n, 1, 1, 1)) < 0.5, blur, target + 0.05 * rng.standard_normal(target.shape))
    return preds.astype(np.float32), target.astype(np.float32)


def accuracy(quick):
    shape = (2, 2, 24, 28) if quick else (4, 2, 64, 72)
    p, t = images(shape)
    for w in (3, 8, 16):
        expected = ref.scc_map(p, t, window_size=w)
        for method in METHODS:
            m = np.asarray(jax_scc.scc_map(p, t, window_size=w, method=method))
            s = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, None, w, "none", method=method))
            pixel = float(np.abs(m - expected).max())
            mean = float(np.abs(s - ref.scores_of_map(expected, False)).max())
            check(pixel <= 1e-5 and mean <= 1e-6, f"w={w} {method}: map error {pixel:.1e}, score error {mean:.1e}")
    holes = p.copy()
    holes[0, 0, 3:6, 5:9] = np.nan
    expected = ref.scc_map(holes, t, window_size=8, ignore_nans=True)
    for method in METHODS:
        m = np.asarray(jax_scc.scc_map(holes, t, window_size=8, ignore_nans=True, method=method))
        ok = np.array_equal(np.isnan(m), np.isnan(expected)) and np.nanmax(np.abs(m - expected)) <= 1e-5
        check(ok, f"ignore_nans {method}: NaN footprint and values")
    # Gradients in both inputs against autodiff of the float64 definition.
    weights = np.linspace(0.5, 1.5, shape[0]).astype(np.float32)
    for method in METHODS:
        f = lambda a, b: jnp.sum(weights * jax_scc.spatial_correlation_coefficient(a, b, None, 3, "none", method=method))
        ours = jax.jit(jax.grad(f, argnums=(0, 1)))(p, t)
        with jax.enable_x64(True):
            f64 = lambda a, b: jnp.sum(jnp.asarray(weights, jnp.float64) * ref.scc_scores_jax(a, b, window_size=3))
            g64 = jax.jit(jax.grad(f64, argnums=(0, 1)))(jnp.asarray(p, jnp.float64), jnp.asarray(t, jnp.float64))
            g64 = [np.asarray(g) for g in g64]
        err = max(float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max()) for a, b in zip(ours, g64))
        check(err <= 1e-5, f"gradient {method} (w=3, both inputs): {err:.1e} of max|grad|")


def median_time(fn, *args, rounds):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def torchmetrics_time(p, t, rounds, backward=False):
    try:
        import torch
        from torchmetrics.functional.image import spatial_correlation_coefficient as tm_scc
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    tp, tt = torch.from_numpy(p).cuda(), torch.from_numpy(t).cuda()

    def call():
        a, b = tp.clone().requires_grad_(backward), tt.clone().requires_grad_(backward)
        loss = 1.0 - tm_scc(a, b)
        if backward:
            loss.backward()
        torch.cuda.synchronize()

    call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def timings(quick, rounds):
    out = {"forward": {}, "grad": {}, "single_image": {}, "windows": {}, "memory": {}}
    big = (2, 3, 64, 64) if quick else (8, 3, 1024, 1024)
    shapes = [big] if quick else [(1, 1, 512, 512), (16, 1, 512, 512), (32, 3, 128, 128), big]
    for shape in shapes:
        p, t = (jax.device_put(x) for x in images(shape))
        gpix = np.prod(shape) / 1e9
        row = {}
        for method in METHODS:
            f = jax.jit(lambda a, b, m=method: jax_scc.spatial_correlation_coefficient(a, b, reduction="none", method=m))
            row[method] = gpix / median_time(f, p, t, rounds=rounds)
        tm = torchmetrics_time(*images(shape), rounds=rounds)
        row["torchmetrics"] = None if tm is None else gpix / tm
        out["forward"][str(shape)] = row
        log(f"forward {shape}: " + ", ".join(f"{k} {v:.1f} Gpix/s" for k, v in row.items() if v))
    # The loss and its gradient in both inputs.
    for shape in [big] if quick else [(16, 1, 512, 512), big]:
        p, t = (jax.device_put(x) for x in images(shape))
        gpix = np.prod(shape) / 1e9
        row = {}
        for method in METHODS:
            loss = lambda a, b, m=method: 1.0 - jax_scc.spatial_correlation_coefficient(a, b, method=m)
            forward = median_time(jax.jit(loss), p, t, rounds=rounds)
            both = median_time(jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), p, t, rounds=rounds)
            row[method] = {"gpix_per_s": gpix / both, "over_forward": both / forward}
        tm = torchmetrics_time(*images(shape), rounds=rounds, backward=True)
        row["torchmetrics"] = None if tm is None else {"gpix_per_s": gpix / tm}
        out["grad"][str(shape)] = row
        log(f"fwd+bwd {shape}: " + ", ".join(f"{k} {v['gpix_per_s']:.1f} Gpix/s" for k, v in row.items() if v))
    # One 512x512 image per call: inside one jitted scan of 64 calls, and as a call.
    side = 64 if quick else 512
    p, t = (jax.device_put(x) for x in images((64, 1, side, side)))
    for method in METHODS:
        def scan(a, b, m=method):
            return jax.lax.map(lambda xy: jax_scc.spatial_correlation_coefficient(xy[0][None], xy[1][None], method=m), (a, b))

        inside = median_time(jax.jit(scan), p, t, rounds=rounds) / 64
        one = jax.jit(lambda a, b, m=method: jax_scc.spatial_correlation_coefficient(a, b, method=m))
        call = median_time(one, p[:1], t[:1], rounds=rounds * 5)
        out["single_image"][method] = {"inside_jit_us": inside * 1e6, "per_call_us": call * 1e6}
        log(f"one {side}x{side} image, {method}: {inside * 1e6:.0f} us inside jit, {call * 1e6:.0f} us per call")
    # Window cost: w=32 against w=8.
    shape = (2, 1, 64, 64) if quick else (4, 1, 512, 512)
    p, t = (jax.device_put(x) for x in images(shape))
    for method in METHODS:
        times = {}
        for w in (8, 32):
            f = jax.jit(lambda a, b, m=method, w=w: jax_scc.spatial_correlation_coefficient(a, b, None, w, method=m))
            times[w] = median_time(f, p, t, rounds=rounds)
        out["windows"][method] = {"w8_s": times[8], "w32_s": times[32], "ratio": times[32] / times[8]}
        log(f"w=32 / w=8, {method}: {times[32] / times[8]:.2f}")
    # XLA temporaries and compile time.
    x = jax.ShapeDtypeStruct(big, jnp.float32)
    programs = {m: (lambda a, b, m=m: jax_scc.spatial_correlation_coefficient(a, b, reduction="none", method=m)) for m in METHODS}
    programs["jit(grad) auto"] = jax.grad(lambda a, b: 1.0 - jax_scc.spatial_correlation_coefficient(a, b), argnums=(0, 1))
    for name, f in programs.items():
        start = time.perf_counter()
        compiled = jax.jit(f).lower(x, x).compile()
        seconds = time.perf_counter() - start
        temp = compiled.memory_analysis().temp_size_in_bytes
        out["memory"][name] = {"compile_s": seconds, "temp_bytes": temp, "times_input": temp / (x.size * 4)}
        log(f"{big} {name}: compile {seconds:.2f} s, temporaries {temp / 2**20:.0f} MiB = {temp / (x.size * 4):.2f}x input")
    return out


def markdown(result) -> str:
    lines = [f"Device: {result['device']} ({result['backend']}), jax {result['jax']}, {result['date']}.", ""]
    lines.append("Accuracy on the device: " + ("every check passed." if not result["failures"] else f"FAILED: {result['failures']}"))
    lines += ["", "Forward, Gpix/s:", "", "| shape | " + " | ".join(METHODS) + " | torchmetrics |", "|---" * 5 + "|"]
    for shape, row in result["forward"].items():
        lines.append(f"| {shape} | " + " | ".join("–" if row.get(k) is None else f"{row[k]:.1f}" for k in (*METHODS, "torchmetrics")) + " |")
    lines += ["", "Loss and gradient (value_and_grad, both inputs), Gpix/s (× forward):", "",
              "| shape | " + " | ".join(METHODS) + " | torchmetrics |", "|---" * 5 + "|"]
    for shape, row in result["grad"].items():
        cells = []
        for k in METHODS:
            cells.append(f"{row[k]['gpix_per_s']:.1f} ({row[k]['over_forward']:.2f}×)")
        tm = row.get("torchmetrics")
        cells.append("–" if tm is None else f"{tm['gpix_per_s']:.2f}")
        lines.append(f"| {shape} | " + " | ".join(cells) + " |")
    lines += ["", "One image per call (µs): inside a jitted scan / as a jitted call:", ""]
    for k, v in result["single_image"].items():
        lines.append(f"- {k}: {v['inside_jit_us']:.0f} / {v['per_call_us']:.0f}")
    lines += ["", "Window cost, w=32 over w=8:", ""]
    for k, v in result["windows"].items():
        lines.append(f"- {k}: {v['ratio']:.2f}")
    lines += ["", "Compile time and XLA temporaries:", "", "| program | compile s | MiB | × input |", "|---|---|---|---|"]
    for k, v in result["memory"].items():
        lines.append(f"| {k} | {v['compile_s']:.2f} | {v['temp_bytes'] / 2**20:.0f} | {v['times_input']:.2f} |")
    if result.get("estimate"):
        lines += ["", "The deviceless H200 compile (benchmarks/results/accel-compile.json) against this device, "
                  "forward on (8, 3, 1024, 1024): temporaries (× input) and Gpix/s (estimate: the HBM-bound ceiling):", "",
                  "| method | estimated temporaries | measured | HBM-bound Gpix/s | measured Gpix/s |", "|---|---|---|---|---|"]
        for method, est in result["estimate"].items():
            measured_temp = result["memory"].get(method, {}).get("times_input")
            measured_speed = result["forward"].get(str((8, 3, 1024, 1024)), {}).get(method)
            cells = ["–" if v is None else f"{v:.2f}" for v in (est["temp"], measured_temp, est["gpix_s"], measured_speed)]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def estimates():
    """The deviceless H200 figures of the forward on (8, 3, 1024, 1024) per
    method, from benchmarks/results/accel-compile.json (``auto`` is ``direct``
    on GPU), to compare with this device's; ``{}`` without the file."""
    path = HERE / "results" / "accel-compile.json"
    if not path.exists():
        return {}
    out = {}
    for row in json.loads(path.read_text()):
        if row["platform"] == "h200" and row["program"] == "forward" and row["shape"] == [8, 3, 1024, 1024]:
            method = "direct" if row["method"].startswith("auto") else row["method"]
            out[method] = {"temp": row.get("temp"), "gpix_s": row.get("gpix_s")}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="Accuracy and speed of jax_scc on an accelerator.")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (checks the script itself)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    device = jax.devices()[0]
    log(f"device: {device.device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    accuracy(args.quick)
    result = {
        "device": str(device.device_kind),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "failures": FAILURES,
        **timings(args.quick, 3 if args.quick else args.rounds),
        "estimate": estimates(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu-" + re.sub(r"[^a-z0-9]+", "-", result["device"].lower()).strip("-")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / f"{stem}.md").write_text(table)
    print(table)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
