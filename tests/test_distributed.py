"""Several devices and several processes give the single-device result.

Multi-device checks run in a subprocess with 4 simulated CPU devices
(tests/_dist_devices.py); the multi-host check starts 2 JAX processes on
127.0.0.1 that talk through CPU collectives (tests/_dist_multihost.py). Every
subprocess is bounded in time.
"""

import json
import os
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


@pytest.fixture(scope="module")
def devices_result():
    proc = subprocess.run(
        [sys.executable, str(TESTS / "_dist_devices.py")],
        env=child_env(4),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_state_close(ours, single):
    assert ours["count"] == single["count"]
    assert abs(ours["score"] - single["score"]) <= TOL
    assert abs(ours["total"] - single["total"]) <= TOL * max(1.0, abs(single["total"]))


def test_functional_under_jit_with_batch_sharded_inputs(devices_result):
    ours, single = devices_result["functional_mean"]
    assert abs(ours - single) <= TOL
    ours, single = devices_result["functional_none"]
    np.testing.assert_allclose(ours, single, atol=TOL, rtol=0)
    assert devices_result["functional_none_sharding"] == "P('batch',)"  # stays sharded


def test_scc_update_under_jit_with_batch_sharded_inputs(devices_result):
    assert_state_close(*devices_result["update_sharded"])


@pytest.mark.parametrize("check", ["shard_map_sync", "shard_map_2d_sync", "pmap_sync"])
def test_scc_sync_gives_the_global_state(devices_result, check):
    ours, single = devices_result[check]
    assert single["count"] == 9  # 12 samples, 3 masked out
    assert_state_close(ours, single)


def test_each_device_only_has_its_shard_before_sync(devices_result):
    # Samples 9..11 (the last device's shard) are masked out.
    assert devices_result["shard_map_unsynced_counts"] == [3, 3, 3, 0]
    assert devices_result["pmap_all_devices_equal"]


def test_metric_totals_stay_on_the_inputs_devices(devices_result):
    assert devices_result["metric_state_devices"] == [2]
    ours, single = devices_result["metric_on_device_2"]
    assert abs(ours - single) <= TOL
    assert devices_result["metric_sharded_state_devices"] == [0, 1, 2, 3]
    ours, single = devices_result["metric_sharded"]
    assert abs(ours - single) <= TOL


# --- two processes --------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_sync_to_the_single_process_result(tmp_path):
    port = free_port()
    # Output goes to files, not pipes: a full pipe of one process must not stall
    # the other one inside a collective.
    logs = [(tmp_path / f"out{i}.txt", tmp_path / f"err{i}.txt") for i in range(2)]
    procs = []
    for i, (out_path, err_path) in enumerate(logs):
        with open(out_path, "w") as out, open(err_path, "w") as err:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(TESTS / "_dist_multihost.py"), str(i), str(port)],
                    env=child_env(2),
                    stdout=out,
                    stderr=err,
                    text=True,
                )
            )
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
    codes = [p.returncode for p in procs]
    if 77 in codes:
        pytest.skip("the installed jaxlib has no CPU collectives: " + outputs[0][0].strip())
    for code, (out, err) in zip(codes, outputs):
        assert code == 0, out[-3000:] + err[-5000:]
    results = []
    for out, _ in outputs:
        line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
        results.append(json.loads(line[len("RESULT "):]))
    assert sorted(r["process_id"] for r in results) == [0, 1]
    for r in results:
        assert r["local_devices"] == 2
        for check in ("shard_map_sync", "jit_sharded_update"):
            ours, single = r[check]
            assert single["count"] == 7
            assert_state_close(ours, single)
        ours, single = r["functional"]
        assert abs(ours - single) <= TOL
    # Both processes hold the same global result.
    assert results[0]["shard_map_sync"][0] == results[1]["shard_map_sync"][0]
