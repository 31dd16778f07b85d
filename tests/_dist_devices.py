"""Worker for tests/test_distributed.py: runs with 4 CPU devices in its own process.

The parent sets ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before this
process imports JAX. Every check computes a value on several devices and the same
value on one device, and prints one JSON object ``{check: [ours, single_device]}``
(plus a few exact facts) on the last line; the parent asserts on it.
"""

import functools
import json
import sys

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import jax_scc

WS = 4


def data(n, seed, c=2, hw=16):
    rng = np.random.default_rng(seed)
    t = rng.random((n, c, hw, hw)).astype(np.float32)
    p = (t + 0.3 * rng.standard_normal(t.shape)).astype(np.float32)
    return p, t


def single(x):
    """``x`` committed to device 0 only."""
    return jax.device_put(x, jax.devices()[0])


def state_values(s):
    return {
        "total": float(np.float64(s.total) + np.float64(s.compensation)),
        "count": int(s.count),
        "score": float(jax_scc.scc_compute(s)),
    }


def main():
    out = {}
    devices = jax.devices()
    assert len(devices) == 4, devices
    mesh = Mesh(np.array(devices), ("batch",))
    by_batch = NamedSharding(mesh, P("batch"))
    p, t = data(12, seed=0)
    mask = np.ones(12, bool)
    mask[-3:] = False  # a padded last batch

    # 1. The functional metric under jit, inputs sharded over the batch axis.
    fn = jax.jit(functools.partial(jax_scc.spatial_correlation_coefficient, window_size=WS))
    fn_none = jax.jit(
        functools.partial(jax_scc.spatial_correlation_coefficient, window_size=WS, reduction="none")
    )
    ps, ts = jax.device_put(p, by_batch), jax.device_put(t, by_batch)
    out["functional_mean"] = [float(fn(ps, ts)), float(fn(single(p), single(t)))]
    sharded_none = fn_none(ps, ts)
    out["functional_none_sharding"] = str(sharded_none.sharding.spec)
    out["functional_none"] = [
        np.asarray(sharded_none).tolist(),
        np.asarray(fn_none(single(p), single(t))).tolist(),
    ]

    # 2. scc_update under jit with sharded inputs and a sharded mask.
    update = jax.jit(functools.partial(jax_scc.scc_update, window_size=WS))
    s_sharded = update(jax_scc.scc_init(), ps, ts, mask=jax.device_put(mask, by_batch))
    s_single = update(jax_scc.scc_init(), single(p), single(t), mask=single(mask))
    out["update_sharded"] = [state_values(s_sharded), state_values(s_single)]

    # 3. shard_map: each device updates its own state over an eval loop, then scc_sync.
    pb, tb = p.reshape(3, 4, 2, 16, 16), t.reshape(3, 4, 2, 16, 16)  # 3 batches of 4
    mb = mask.reshape(3, 4)

    def local_eval(pb, tb, mb):
        def body(s, xs):
            return jax_scc.scc_update(s, xs[0], xs[1], window_size=WS, mask=xs[2]), None

        # A scan carry must have one type: the per-device state varies over "batch".
        init = jax.lax.pcast(jax_scc.scc_init(), "batch", to="varying")
        s, _ = jax.lax.scan(body, init, (pb, tb, mb))
        return jax_scc.scc_sync(s, "batch")

    smap = jax.jit(
        jax.shard_map(
            local_eval,
            mesh=mesh,
            in_specs=(P(None, "batch"), P(None, "batch"), P(None, "batch")),
            out_specs=P(),
        )
    )
    s_smap = smap(pb, tb, mb)
    out["shard_map_sync"] = [state_values(s_smap), state_values(s_single)]
    # Without the sync each device only has its own quarter (out_specs keeps them apart).
    unsynced = jax.jit(
        jax.shard_map(
            lambda p, t, m: jax.tree.map(
                lambda x: x[None],
                jax_scc.scc_update(jax_scc.scc_init(), p, t, window_size=WS, mask=m),
            ),
            mesh=mesh,
            in_specs=(P("batch"), P("batch"), P("batch")),
            out_specs=P("batch"),
        )
    )(p, t, mask)
    out["shard_map_unsynced_counts"] = np.asarray(unsynced.count).tolist()

    # 4. A 2x2 mesh, syncing over both axes at once (a tuple of axis names).
    mesh2 = Mesh(np.array(devices).reshape(2, 2), ("data", "model"))
    smap2 = jax.jit(
        jax.shard_map(
            lambda p, t, m: jax_scc.scc_sync(
                jax_scc.scc_update(jax_scc.scc_init(), p, t, window_size=WS, mask=m),
                ("data", "model"),
            ),
            mesh=mesh2,
            in_specs=(P(("data", "model")),) * 3,
            out_specs=P(),
        )
    )
    out["shard_map_2d_sync"] = [state_values(smap2(p, t, mask)), state_values(s_single)]

    # 5. pmap with an axis name.
    pm = jax.pmap(
        lambda p, t, m: jax_scc.scc_sync(
            jax_scc.scc_update(jax_scc.scc_init(), p, t, window_size=WS, mask=m), "batch"
        ),
        axis_name="batch",
    )
    s_pmap = pm(p.reshape(4, 3, 2, 16, 16), t.reshape(4, 3, 2, 16, 16), mask.reshape(4, 3))
    per_device = [state_values(jax.tree.map(lambda x: x[i], s_pmap)) for i in range(4)]
    out["pmap_sync"] = [per_device[0], state_values(s_single)]
    out["pmap_all_devices_equal"] = all(d == per_device[0] for d in per_device)

    # 6. The stateful metric keeps its totals where the inputs live.
    m = jax_scc.SpatialCorrelationCoefficient(window_size=WS)
    d2 = devices[2]
    m.update(jax.device_put(p, d2), jax.device_put(t, d2), mask=jax.device_put(mask, d2))
    out["metric_state_devices"] = sorted(d.id for d in m.state.total.devices())
    out["metric_on_device_2"] = [float(m.compute()), state_values(s_single)["score"]]
    m_sharded = jax_scc.SpatialCorrelationCoefficient(window_size=WS)
    m_sharded.update(ps, ts, mask=jax.device_put(mask, by_batch))
    m_sharded.update(ps, ts)
    out["metric_sharded_state_devices"] = sorted(d.id for d in m_sharded.state.total.devices())
    single_two = update(s_single, single(p), single(t))
    out["metric_sharded"] = [float(m_sharded.compute()), state_values(single_two)["score"]]

    # 7. jax_scc.nnx.SCC in a jitted nnx eval step over the sharded batch (flax optional).
    try:
        from flax import nnx
    except ImportError:
        out["nnx_sharded"] = None
    else:
        from jax_scc.nnx import SCC

        metrics = nnx.MultiMetric(loss=nnx.metrics.Average("loss"), scc=SCC(window_size=WS))
        eval_step = nnx.jit(lambda m, p, t, mask: m.update(loss=jax.numpy.zeros(p.shape[0]), preds=p, target=t, mask=mask))
        eval_step(metrics, ps, ts, jax.device_put(mask, by_batch))
        out["nnx_sharded"] = [float(metrics.compute()["scc"]), state_values(s_single)["score"]]
        out["nnx_count"] = int(metrics.scc.count[...])

    # 8. The pooled remote-sensing totals under jit, inputs sharded over the batch axis.
    pooled = jax.jit(jax_scc.pooled_scc_update)
    bands = {}
    for where, (pp, tt, mm) in (("sharded", (ps, ts, jax.device_put(mask, by_batch))),
                                ("single", (single(p), single(t), single(mask)))):
        s = pooled(jax_scc.pooled_scc_init(2, "zhou"), pp, tt, mask=mm)
        bands[where] = np.asarray(jax_scc.pooled_scc_compute(s, per_band=True)).tolist()
    out["pooled_sharded"] = [bands["sharded"], bands["single"]]
    # ... and inside shard_map: each device pools its rows, then pooled_scc_sync.
    synced = jax.jit(
        jax.shard_map(
            lambda p, t, m: jax_scc.pooled_scc_compute(
                jax_scc.pooled_scc_sync(
                    jax_scc.pooled_scc_update(jax_scc.pooled_scc_init(2, "zhou"), p, t, mask=m), "batch"
                ),
                per_band=True,
            ),
            mesh=mesh,
            in_specs=(P("batch"),) * 3,
            out_specs=P(),
        )
    )
    out["pooled_shard_map_sync"] = [np.asarray(synced(p, t, mask)).tolist(), bands["single"]]

    # 9. examples/evaluate_stack.py: padded, masked batches sharded over the devices.
    import contextlib
    import importlib.util
    import io
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "evaluate_stack.py"
    spec = importlib.util.spec_from_file_location("evaluate_stack", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = example.main(["--num-images", "10", "--batch-size", "4", "--image-size", "16", "--window-size", "4"])
    out["evaluate_stack"] = {"exit": code, "printed": printed.getvalue()}

    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
