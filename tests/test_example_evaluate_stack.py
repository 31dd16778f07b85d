"""examples/evaluate_stack.py: runs on 4 simulated devices, and its check can fail."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "examples" / "evaluate_stack.py"


def _load():
    spec = importlib.util.spec_from_file_location("evaluate_stack", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runs_sharded_over_four_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--num-images", "22", "--batch-size", "8",
         "--image-size", "32", "--window-size", "4"],
        env=env, capture_output=True, text=True, timeout=240,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-5000:]
    assert "3 batches of 8 (last one padded with 2), sharded over 4 cpu device(s)" in out
    for variant in ("jit", "shard_map"):
        bars = re.findall(rf"^\s*{variant} \[[#.]+\] (\d)/3 batches$", out, flags=re.M)
        assert bars == ["1", "2", "3"]
        line = re.search(rf"SCC \({variant}\): ([\d.]+)\s+one-shot functional: ([\d.]+)"
                         r"\s+difference (\S+) OK", out)
        assert line, out
        assert abs(float(line.group(1)) - float(line.group(2))) <= 1e-6


def test_exits_nonzero_when_scores_differ(monkeypatch, capsys):
    module = _load()
    args = ["--num-images", "5", "--batch-size", "2", "--image-size", "16",
            "--window-size", "4", "--variant", "jit"]
    assert module.main(args) == 0
    monkeypatch.setattr(module, "TOLERANCE", -1.0)  # any difference is too much
    assert module.main(args) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_padded_batches_mask_the_padding():
    module = _load()
    preds, target = module.make_stack(5, 16)
    batches = list(module.padded_batches(preds, target, 2))
    assert [b[2].tolist() for b in batches] == [[True, True], [True, True], [True, False]]
    assert all(b[0].shape == (2, 1, 16, 16) for b in batches)


def test_rejects_a_batch_size_that_does_not_split_over_devices(capsys):
    module = _load()
    with pytest.raises(SystemExit) as e:
        module.main(["--batch-size", "0"])
    assert e.value.code == 2
    assert "--batch-size must be a positive multiple" in capsys.readouterr().err
