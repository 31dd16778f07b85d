"""Several devices and several processes give the single-device result.

Multi-device checks run in a subprocess with 4 simulated CPU devices
(tests/_dist_devices.py); the multi-host check starts 2 JAX processes on
127.0.0.1 that talk through CPU collectives (tests/_dist_multihost.py). Every
subprocess is bounded in time.
"""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent
TOL = 1e-6


def child_env(num_devices):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={num_devices}"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def assert_state_close(ours, single, what):
    assert ours["count"] == single["count"], what
    assert abs(ours["score"] - single["score"]) <= TOL, what
    assert abs(ours["total"] - single["total"]) <= TOL * max(1.0, abs(single["total"])), what


def test_four_devices_give_the_single_device_result():
    """One subprocess with 4 CPU devices (tests/_dist_devices.py) runs every
    multi-device use and the same computation on one device."""
    proc = subprocess.run(
        [sys.executable, str(TESTS / "_dist_devices.py")],
        env=child_env(4),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # The functional metric and scc_update under jit, inputs sharded over the batch.
    ours, single = result["functional_mean"]
    assert abs(ours - single) <= TOL
    np.testing.assert_allclose(*result["functional_none"], atol=TOL, rtol=0)
    assert result["functional_none_sharding"] == "P('batch',)"  # stays sharded
    assert_state_close(*result["update_sharded"], "jit, sharded inputs")
    # scc_sync inside shard_map (1-D and 2-D meshes) and pmap: the global state.
    for check in ("shard_map_sync", "shard_map_2d_sync", "pmap_sync"):
        ours, single = result[check]
        assert single["count"] == 9  # 12 samples, 3 masked out
        assert_state_close(ours, single, check)
    # Before the sync each device holds only its shard (the last one: masked out).
    assert result["shard_map_unsynced_counts"] == [3, 3, 3, 0]
    assert result["pmap_all_devices_equal"]
    # The stateful metric keeps its totals where the inputs live.
    assert result["metric_state_devices"] == [2]
    assert abs(result["metric_on_device_2"][0] - result["metric_on_device_2"][1]) <= TOL
    assert result["metric_sharded_state_devices"] == [0, 1, 2, 3]
    assert abs(result["metric_sharded"][0] - result["metric_sharded"][1]) <= TOL
    # flax.nnx: the metric in a jitted nnx eval step over the sharded batch.
    if result["nnx_sharded"] is not None:
        assert result["nnx_count"] == 9
        assert abs(result["nnx_sharded"][0] - result["nnx_sharded"][1]) <= TOL
    # The remote-sensing pooled totals (global_scc's moments) under jit.
    np.testing.assert_allclose(*result["pooled_sharded"], atol=TOL, rtol=0)
    np.testing.assert_allclose(*result["pooled_shard_map_sync"], atol=TOL, rtol=0)
    # examples/evaluate_stack.py: 10 images in 3 padded batches of 4 over 4 devices.
    run = result["evaluate_stack"]
    out = run["printed"]
    assert run["exit"] == 0, out
    assert "10 image pairs of 16x16, 3 batches of 4 (the last one padded with 2), sharded over 4 cpu devices" in out
    for variant in ("jit", "shard_map"):
        bars = re.findall(rf"^\s*{variant} \[[#.]+\] (\d)/3 batches$", out, flags=re.M)
        assert bars == ["1", "2", "3"]
        line = re.search(rf"SCC \({variant}\): ([\d.]+)\s+one-shot functional: ([\d.]+)\s+difference (\S+) OK", out)
        assert line, out
        assert abs(float(line.group(1)) - float(line.group(2))) <= TOL


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _readme_multihost_script():
    """The README's multi-host block (the ```py block that starts with its file name)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```py\n(# multihost_eval\.py.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "README.md lost its multi-host example"
    return blocks[0]


def test_readme_multihost_example_runs_as_two_processes(tmp_path):
    """The README's multi-host script, as written, in two JAX processes on
    127.0.0.1 (2 CPU devices each, collectives over gloo): both print the
    single-process score of the same batch."""
    script = tmp_path / "multihost_eval.py"
    script.write_text(_readme_multihost_script())
    port = free_port()
    # Output goes to files, not pipes: a full pipe of one process must not stall
    # the other one inside a collective.
    logs = [(tmp_path / f"out{i}.txt", tmp_path / f"err{i}.txt") for i in range(2)]
    procs = []
    for i, (out_path, err_path) in enumerate(logs):
        env = dict(child_env(2), JAX_COORDINATOR=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i))
        with open(out_path, "w") as out, open(err_path, "w") as err:
            procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=out, stderr=err))
    try:
        for p in procs:
            p.wait(timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("the two JAX processes did not finish within 240 s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    outputs = [(o.read_text(), e.read_text()) for o, e in logs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:] + err[-5000:]
    # The same batch on this (single-process) side.
    import jax_scc

    rng = np.random.default_rng(0)
    target = rng.random((8, 1, 32, 32), dtype=np.float32)
    preds = (target + 0.3 * rng.standard_normal(target.shape)).astype(np.float32)
    single = float(jax_scc.spatial_correlation_coefficient(preds[:7], target[:7]))
    pattern = r"process (\d): SCC over 7 images: ([\d.]+) \(shard_map \+ scc_sync\), ([\d.]+) \(jit\)"
    found = sorted(re.search(pattern, out).groups() for out, _ in outputs)
    assert [f[0] for f in found] == ["0", "1"]
    for _, synced, plain in found:
        assert abs(float(synced) - single) <= TOL and abs(float(plain) - single) <= TOL
