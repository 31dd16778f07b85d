"""Worker for tests/test_distributed.py: one of two JAX processes on 127.0.0.1.

Usage: python tests/_dist_multihost.py PROCESS_ID PORT

Each process has 2 CPU devices (the parent sets ``XLA_FLAGS``), so the global
mesh has 4 devices over 2 processes. Both processes build the same global batch
from a seed, load only their half, score it on their own devices, and sync the
states through CPU collectives (gloo): once with ``shard_map`` + ``scc_sync``,
once with plain ``jit`` over the globally sharded batch. Each also computes the
single-process result on its own first device, and prints one JSON line; the
parent compares.

Exit code 77: the installed jaxlib has no CPU collectives (the parent skips).
"""

import functools
import json
import sys


def main(process_id: int, port: int) -> int:
    import jax

    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError, KeyError) as e:  # option or backend missing
        print(f"NO_CPU_COLLECTIVES: {e}", flush=True)
        return 77
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=2,
        process_id=process_id,
        initialization_timeout=60,
    )
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    import jax_scc

    ws = 4
    rng = np.random.default_rng(0)
    target = rng.random((8, 2, 16, 16)).astype(np.float32)  # the global batch
    preds = (target + 0.3 * rng.standard_normal(target.shape)).astype(np.float32)
    mask = np.array([True] * 7 + [False])  # the last sample is padding

    assert jax.process_count() == 2 and len(jax.devices()) == 4, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    sharding = NamedSharding(mesh, P("batch"))
    half = slice(4 * process_id, 4 * process_id + 4)  # this process's samples

    def global_array(x):
        return jax.make_array_from_process_local_data(sharding, x[half], x.shape)

    gp, gt, gm = global_array(preds), global_array(target), global_array(mask)

    def local_step(p, t, m):
        s = jax_scc.scc_update(jax_scc.scc_init(), p, t, window_size=ws, mask=m)
        return jax_scc.scc_sync(s, "batch")

    synced = jax.jit(
        jax.shard_map(local_step, mesh=mesh, in_specs=(P("batch"),) * 3, out_specs=P())
    )(gp, gt, gm)
    jitted = jax.jit(functools.partial(jax_scc.scc_update, window_size=ws))(
        jax_scc.scc_init(), gp, gt, mask=gm
    )
    score_synced = jax.jit(jax_scc.scc_compute)(synced)
    functional = jax.jit(
        functools.partial(jax_scc.spatial_correlation_coefficient, window_size=ws)
    )(gp, gt)

    def local(x):  # a replicated global array: this process's copy
        return np.asarray(x.addressable_shards[0].data)

    def values(s, score):
        return {
            "total": float(np.float64(local(s.total)) + np.float64(local(s.compensation))),
            "count": int(local(s.count)),
            "score": float(local(score)),
        }

    # The single-process reference, on this process's first device only.
    dev = jax.local_devices()[0]
    ref = jax_scc.scc_update(
        jax_scc.scc_init(),
        jax.device_put(preds, dev),
        jax.device_put(target, dev),
        window_size=ws,
        mask=jax.device_put(mask, dev),
    )
    ref_values = {
        "total": float(np.float64(ref.total) + np.float64(ref.compensation)),
        "count": int(ref.count),
        "score": float(jax_scc.scc_compute(ref)),
    }
    ref_functional = float(
        jax_scc.spatial_correlation_coefficient(
            jax.device_put(preds, dev), jax.device_put(target, dev), window_size=ws
        )
    )
    out = {
        "process_id": jax.process_index(),
        "local_devices": len(jax.local_devices()),
        "shard_map_sync": [values(synced, score_synced), ref_values],
        "jit_sharded_update": [values(jitted, jax.jit(jax_scc.scc_compute)(jitted)), ref_values],
        "functional": [float(local(functional)), ref_functional],
    }
    print("RESULT " + json.dumps(out), flush=True)
    jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
