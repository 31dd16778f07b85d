"""Evaluate SCC over an image stack in fixed-size, device-sharded batches.

A folder-free evaluation loop: a synthetic stack of (reference, degraded) image
pairs is scored in batches of a fixed shape (so every step reuses one compiled
program); the last batch is padded and masked; each batch is sharded over all
local devices along the batch axis. Two variants of the step:

* ``jit``: ``scc_update`` under ``jax.jit`` on batch-sharded inputs; XLA does the
  cross-device reduction and the state stays replicated.
* ``shard_map``: every device updates its own state, with no communication per
  batch, and ``scc_sync`` (inside ``jax.shard_map``) sums them once at the end.

Both final scores are checked against the one-shot functional
``spatial_correlation_coefficient(..., reduction="none").mean()``; the exit code
is 1 if one differs by more than 1e-6.

Run:  python examples/evaluate_stack.py [--num-images 100] [--batch-size 16]
Simulate 4 devices on a CPU:
      XLA_FLAGS=--xla_force_host_platform_device_count=4 python examples/evaluate_stack.py
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Iterator, Tuple

import numpy as np

TOLERANCE = 1e-6


def make_stack(num_images: int, size: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(preds, target)``, float32 ``(num_images, 1, size, size)``: smooth random
    scenes with edges, and the same scenes blurred, shifted and noisy."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((num_images, 1, size // 8, size // 8))
    target = np.kron(coarse, np.ones((8, 8)))  # piecewise-constant: sharp edges
    blurred = (target + np.roll(target, 1, -1) + np.roll(target, 1, -2)) / 3.0
    noise = rng.uniform(0.0, 0.2, (num_images, 1, 1, 1)) * rng.standard_normal(target.shape)
    return (blurred + noise).astype(np.float32), target.astype(np.float32)


def padded_batches(
    preds: np.ndarray, target: np.ndarray, batch_size: int
) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Fixed-shape ``(preds, target, mask)`` batches; the last is zero-padded and
    its padding masked out."""
    for start in range(0, len(preds), batch_size):
        p, t = preds[start : start + batch_size], target[start : start + batch_size]
        n = len(p)
        pad = [(0, batch_size - n)] + [(0, 0)] * (p.ndim - 1)
        mask = np.arange(batch_size) < n
        yield np.pad(p, pad), np.pad(t, pad), mask


def progress(done: int, total: int, label: str, width: int = 30) -> None:
    """A plain-text progress bar: redrawn in place on a terminal, one line per batch
    otherwise (logs, pipes)."""
    filled = width * done // total
    bar = "#" * filled + "." * (width - filled)
    end = "\r" if sys.stdout.isatty() and done < total else "\n"
    print(f"{label:>9} [{bar}] {done}/{total} batches", end=end, flush=True)


def evaluate_jit(preds, target, batch_size, window_size, mesh) -> float:
    """Batch-sharded inputs, one jitted ``scc_update`` step; returns the mean score."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P

    import jax_scc

    by_batch = NamedSharding(mesh, P("batch"))
    step = jax.jit(functools.partial(jax_scc.scc_update, window_size=window_size))
    state = jax_scc.scc_init()
    num_batches = -(-len(preds) // batch_size)
    for i, (p, t, m) in enumerate(padded_batches(preds, target, batch_size)):
        p, t, m = jax.device_put((p, t, m), by_batch)
        state = step(state, p, t, mask=m)  # dispatched asynchronously
        progress(i + 1, num_batches, "jit")
    return float(jax_scc.scc_compute(state))  # the only host transfer


def evaluate_shard_map(preds, target, batch_size, window_size, mesh) -> float:
    """One state per device, updated without communication; ``scc_sync`` at the end."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P

    import jax_scc

    num_devices = mesh.devices.size
    by_batch = NamedSharding(mesh, P("batch"))

    # Per-device states stacked on a leading device axis, one row per device.
    states = jax.tree.map(
        lambda x: jnp.broadcast_to(x, (num_devices,)), jax_scc.scc_init()
    )
    states = jax.device_put(states, by_batch)

    @jax.jit
    @functools.partial(
        jax.shard_map, mesh=mesh, in_specs=P("batch"), out_specs=P("batch")
    )
    def step(states, p, t, m):
        state = jax.tree.map(lambda x: x[0], states)  # this device's row
        state = jax_scc.scc_update(state, p, t, window_size=window_size, mask=m)
        return jax.tree.map(lambda x: x[None], state)

    @jax.jit
    @functools.partial(jax.shard_map, mesh=mesh, in_specs=P("batch"), out_specs=P())
    def finish(states):
        state = jax_scc.scc_sync(jax.tree.map(lambda x: x[0], states), "batch")
        return jax_scc.scc_compute(state)

    num_batches = -(-len(preds) // batch_size)
    for i, (p, t, m) in enumerate(padded_batches(preds, target, batch_size)):
        p, t, m = jax.device_put((p, t, m), by_batch)
        states = step(states, p, t, m)
        progress(i + 1, num_batches, "shard_map")
    return float(finish(states))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16,
                        help="a multiple of the number of devices")
    parser.add_argument("--image-size", type=int, default=64, help="a multiple of 8")
    parser.add_argument("--window-size", type=int, default=8)
    parser.add_argument("--variant", choices=("jit", "shard_map", "both"), default="both")
    args = parser.parse_args(argv)

    import jax
    from jax.sharding import Mesh

    import jax_scc

    devices = jax.devices()
    if args.batch_size < 1 or args.batch_size % len(devices):
        parser.error(f"--batch-size must be a positive multiple of the {len(devices)} "
                     f"devices, got {args.batch_size}")
    if args.num_images < 1 or args.image_size < 8 or args.image_size % 8:
        parser.error("--num-images must be >= 1 and --image-size a multiple of 8")
    mesh = Mesh(np.array(devices), ("batch",))
    preds, target = make_stack(args.num_images, args.image_size)
    num_batches = -(-args.num_images // args.batch_size)
    padding = num_batches * args.batch_size - args.num_images
    pairs = "1 image pair" if args.num_images == 1 else f"{args.num_images} image pairs"
    batches = "1 batch" if num_batches == 1 else f"{num_batches} batches"
    padded = f" (the last one padded with {padding})" if padding else ""
    device = "device" if len(devices) == 1 else "devices"
    print(f"{pairs} of {args.image_size}x{args.image_size}, {batches} of {args.batch_size}"
          f"{padded}, sharded over {len(devices)} {devices[0].platform} {device}")

    reference = float(
        jax_scc.spatial_correlation_coefficient(
            preds, target, window_size=args.window_size, reduction="none"
        ).mean()
    )
    variants = ("jit", "shard_map") if args.variant == "both" else (args.variant,)
    evaluate = {"jit": evaluate_jit, "shard_map": evaluate_shard_map}
    ok = True
    for name in variants:
        score = evaluate[name](preds, target, args.batch_size, args.window_size, mesh)
        diff = abs(score - reference)
        ok &= diff <= TOLERANCE
        print(f"SCC ({name}): {score:.8f}   one-shot functional: {reference:.8f}   "
              f"difference {diff:.1e} {'OK' if diff <= TOLERANCE else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
