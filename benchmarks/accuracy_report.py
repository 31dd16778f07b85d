"""Accuracy of jax_scc and torchmetrics (both float32) against the float64 evaluation
of the definition (tests/reference.py) on the seed example and quantized photographs.

Run:  python benchmarks/accuracy_report.py      (needs the `test` extra: torch, torchmetrics, scikit-image)
Prints a Markdown table: mean error / max per-pixel error.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import reference as ref  # noqa: E402
from images import photo, quantize, seed_pair  # noqa: E402

import jax_scc  # noqa: E402


def torchmetrics_map(p, t, ws):
    import torch
    from torchmetrics.functional.image.scc import _scc_per_channel_compute

    hp = torch.tensor(jax_scc.DEFAULT_HP_FILTER, dtype=torch.float32)[None, None]
    return _scc_per_channel_compute(torch.from_numpy(np.array(p)), torch.from_numpy(np.array(t)), hp, ws).numpy()


def main():
    cases = [("seed (phantom vs. reconstruction, 512², w=8)", *seed_pair(), 8)]
    for name in ("camera", "astronaut", "brick"):
        img = photo(name, 512)
        q, o = quantize(img)[None, None], img.astype(np.float32)[None, None]
        for ws in (8, 3, 2):
            cases.append((f"{name} 512², 16 grey levels vs. original, w={ws}", q, o, ws))
    print(
        "| case (float32 inputs; error vs. the float64 evaluation) | jax_scc (auto) mean / max pixel "
        "| jax_scc method='slices' | torchmetrics 1.9 mean / max pixel |"
    )
    print("|---|---|---|---|")
    for label, p, t, ws in cases:
        expected = ref.scc_map(p, t, window_size=ws)
        ours = np.asarray(jax_scc.scc_map(p, t, window_size=ws))
        tree = np.asarray(jax_scc.scc_map(p, t, window_size=ws, method="slices"))
        tm = torchmetrics_map(p, t, ws)
        cells = [
            f"{abs(m.mean() - expected.mean()):.1e} / {np.abs(m - expected).max():.1e}" for m in (ours, tree, tm)
        ]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
