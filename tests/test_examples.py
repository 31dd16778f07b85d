"""The examples run from their command lines' entry points and produce their outputs."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("skimage")

EXAMPLES = Path(__file__).parent.parent / "examples"
SEED_SCORE = 0.14591339230537415  # torchmetrics 1.9 on the seed inputs


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_loss_improves_held_out_scc(tmp_path, capsys):
    out = tmp_path / "training.png"
    initial, final = _load("training_loss").main(
        ["--steps", "30", "--eval-every", "10", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert final > initial + 0.03, (initial, final)
    assert f"{initial:.4f} -> {final:.4f}" in printed
    assert _is_png(out)


def test_ct_reconstruction_prints_seed_score_and_saves_figure(tmp_path, capsys):
    out = tmp_path / "ct.png"
    score = _load("ct_reconstruction").main(["--out", str(out)])
    printed = capsys.readouterr().out
    assert score == pytest.approx(SEED_SCORE, abs=1e-6)
    assert f"Spatial Correlation Coefficient between the images: {score}" in printed
    assert _is_png(out)
