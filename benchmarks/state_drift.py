"""Drift of SCC running totals after many updates: compensated pair vs naive float32.

Feeds ``--num-updates`` random per-sample scores, uniform in [-1, 1], one per
update, through the accumulate step of :class:`jax_scc.SCCState` (a jitted
``lax.scan``), and through a naive float32 running sum, and compares both with
the exact (``math.fsum``) sum of the same float32 scores. Also reports scores in
[0, 1], where the running sum grows large and a float32 total stalls.

Run:  python benchmarks/state_drift.py [--num-updates 10000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def run(num_updates: int, seed: int = 0, batch: int = 1, low: float = -1.0):
    """Returns a dict of the exact sum, both float32 sums and their relative errors."""
    import jax
    import jax.numpy as jnp

    from jax_scc._src.state import add_scores, df_to_float64, scc_init

    rng = np.random.default_rng(seed)
    scores = rng.uniform(low, 1.0, size=(num_updates // batch, batch)).astype(np.float32)
    exact = math.fsum(scores.astype(np.float64).ravel())

    @jax.jit
    def both(xs):
        def step(carry, x):
            state, naive = carry
            return (add_scores(state, x), naive + jnp.sum(x)), None

        (state, naive), _ = jax.lax.scan(step, (scc_init(), jnp.float32(0)), xs)
        return state, naive

    t0 = time.perf_counter()
    state, naive = jax.block_until_ready(both(jnp.asarray(scores)))
    seconds = time.perf_counter() - t0
    compensated = float(df_to_float64(state))
    naive = float(naive)
    return {
        "num_updates": num_updates // batch,
        "num_scores": scores.size,
        "exact": exact,
        "compensated": compensated,
        "naive": naive,
        "rel_err_compensated": abs(compensated - exact) / abs(exact),
        "rel_err_naive": abs(naive - exact) / abs(exact),
        "count": int(state.count),
        "seconds": seconds,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-updates", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for low in (-1.0, 0.0):
        r = run(args.num_updates, args.seed, low=low)
        print(f"{r['num_updates']} updates of one float32 score in [{low:g}, 1], "
              f"seed {args.seed}")
        print(f"  exact sum (float64 fsum):     {r['exact']!r}")
        print(f"  SCCState total+compensation:  {r['compensated']!r}  "
              f"relative error {r['rel_err_compensated']:.2e}")
        print(f"  naive float32 running sum:    {r['naive']!r}  "
              f"relative error {r['rel_err_naive']:.2e}")
        print(f"  count: {r['count']}  (both scans: {r['seconds']:.1f} s incl. compile)")


if __name__ == "__main__":
    main()
