"""The examples run from their command lines' entry points and produce their outputs.
(examples/evaluate_stack.py on four devices: tests/test_distributed.py.)"""

import importlib.util
import re
from pathlib import Path

import pytest

from images import SEED_TORCHMETRICS_FLOAT32

pytest.importorskip("matplotlib")
pytest.importorskip("skimage")

EXAMPLES = Path(__file__).parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ct_reconstruction_prints_the_seed_score_and_saves_the_figure(tmp_path, capsys):
    out = tmp_path / "ct.png"
    score = _load("ct_reconstruction").main(["--out", str(out)])
    printed = capsys.readouterr().out
    assert score == pytest.approx(SEED_TORCHMETRICS_FLOAT32, abs=1e-6)
    assert f"Spatial Correlation Coefficient between the images: {score}" in printed
    # The float64 definitions on the same float32 pair: 0.98879042, 0.90635043.
    assert "the pansharpening toolbox's sCC 0.9888, Zhou's global SCC 0.9064" in printed
    assert _is_png(out)


def test_training_loss_improves_held_out_scc_and_times_the_scc_term(tmp_path, capsys):
    pytest.importorskip("flax")
    pytest.importorskip("optax")
    out = tmp_path / "training.png"
    initial, final, times = _load("training_loss").main(
        ["--steps", "20", "--eval-every", "10", "--timing-repeats", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    held_out = [float(s) for s in re.findall(r"held-out SCC (\d\.\d{4})$", printed, re.MULTILINE)]
    assert len(held_out) == 2 and initial < held_out[0] < held_out[1], (initial, held_out)  # 0.267, 0.297, 0.335
    assert final > initial + 0.03
    assert held_out[-1] == pytest.approx(final, abs=1e-4)
    assert f"{initial:.4f} -> {final:.4f}" in printed
    # The SCC term's share of a step: the step with it minus the step without it
    # (timed: its sign is up to a loaded machine, so only the arithmetic is checked).
    share, scc_ms, step_ms = re.search(r"SCC term: (-?\d+)% of a training step \((-?[\d.]+) ms of ([\d.]+) ms", printed).groups()
    assert float(step_ms) == pytest.approx(1e3 * times.with_scc, abs=0.01)
    assert float(scc_ms) == pytest.approx(1e3 * (times.with_scc - times.without_scc), abs=0.01)
    # The share is rounded from the unrounded times (the printed ms are rounded too).
    assert abs(int(share) - 100 * (times.with_scc - times.without_scc) / times.with_scc) <= 0.5 + 1e-9
    assert _is_png(out)


def test_evaluate_stack_checks_itself(monkeypatch, capsys):
    """Its comparison with the one-shot result can fail, and bad arguments exit 2."""
    module = _load("evaluate_stack")
    args = ["--num-images", "5", "--batch-size", "2", "--image-size", "16", "--window-size", "4", "--variant", "jit"]
    assert module.main(args) == 0
    monkeypatch.setattr(module, "TOLERANCE", -1.0)  # any difference is too much
    assert module.main(args) == 1
    assert "MISMATCH" in capsys.readouterr().out
    batches = list(module.padded_batches(*module.make_stack(5, 16), 2))
    assert [b[2].tolist() for b in batches] == [[True, True], [True, True], [True, False]]
    with pytest.raises(SystemExit) as e:
        module.main(["--batch-size", "0"])
    assert e.value.code == 2 and "--batch-size must be a positive multiple" in capsys.readouterr().err
