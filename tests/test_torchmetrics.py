"""Parity with torchmetrics 1.9: recorded golden values, and live comparisons when
torch and torchmetrics are installed (the `test` extra installs them)."""

import functools

import numpy as np
import pytest

import jax_scc
from images import SEED_FLOAT64, SEED_TORCHMETRICS_FLOAT32, photo, quantize, seed_pair

# --- Golden values -----------------------------------------------------------------
# Produced with torchmetrics 1.9.0 / torch 2.13.0 (CPU) on the inputs built below by
# torchmetrics.functional.image.scc._scc_per_channel_compute called per channel on
# float64 tensors (the public function always casts to float32), then the mean over
# channels and pixels: the definition evaluated in float64.
GOLDEN_FLOAT64 = {
    "seed": [SEED_FLOAT64],  # (1, 1, 512, 512), default filter, window 8
    "camera128_16levels_vs_original": [0.10824667002347804],  # (1, 1, 128, 128), window 8
    "astronaut_rgb_quantized_and_noisy": [0.567485368202882, 0.1304104246275981],  # (2, 3, 48, 40), 5x5 filter, window 5
}
HP5 = ((0, 0, -1, 0, 0), (0, -1, -2, -1, 0), (-1, -2, 16, -2, -1), (0, -1, -2, -1, 0), (0, 0, -1, 0, 0))


def _case(name):
    if name == "seed":
        return (*seed_pair(), {})
    if name == "camera128_16levels_vs_original":
        img = photo("camera", 128)
        return quantize(img)[None, None], img.astype(np.float32)[None, None], {}
    from skimage import data

    rgb = (data.astronaut()[:48, :40].astype(np.float64) / 255).transpose(2, 0, 1)
    noise = np.clip(rgb + 0.1 * np.random.default_rng(1).standard_normal(rgb.shape), 0, 1)
    preds = np.stack([quantize(rgb), noise.astype(np.float32)])
    target = np.stack([rgb.astype(np.float32)] * 2)
    return preds, target, {"hp_filter": HP5, "window_size": 5}


@pytest.mark.parametrize("name", sorted(GOLDEN_FLOAT64))
def test_golden_float64(name):
    """Our float32 result equals torchmetrics' float64 evaluation to 1e-6."""
    p, t, kwargs = _case(name)
    ours = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none", **kwargs))
    np.testing.assert_allclose(ours, GOLDEN_FLOAT64[name], atol=1e-6, rtol=0)


def test_golden_seed_score_as_torchmetrics_prints_it():
    """The seed example: torchmetrics 1.9 prints 0.14591339230537415."""
    p, t, _ = _case("seed")
    assert abs(float(jax_scc.spatial_correlation_coefficient(p, t)) - SEED_TORCHMETRICS_FLOAT32) < 1e-6


# --- Live comparisons ------------------------------------------------------------------
@functools.cache
def _torch_and_tm():
    """torch and torchmetrics' SCC module, imported on first use (they take ~9 s
    to import: a test process that runs none of these tests never pays it)."""
    torch = pytest.importorskip("torch", reason="torch not installed: live torchmetrics parity skipped")
    return torch, pytest.importorskip("torchmetrics.functional.image.scc")


def _tm_float64_map(p, t, hp, ws):
    """torchmetrics' per-channel code on float64 tensors: map of shape (N, C, H, W)."""
    torch, tm_scc_module = _torch_and_tm()
    p = torch.from_numpy(np.array(p, np.float64))
    t = torch.from_numpy(np.array(t, np.float64))
    if p.ndim == 3:
        p, t = p[:, None], t[:, None]
    hp = torch.tensor(np.asarray(hp, np.float64))[None, None]
    return torch.cat(
        [tm_scc_module._scc_per_channel_compute(p[:, i : i + 1], t[:, i : i + 1], hp, ws) for i in range(p.shape[1])],
        dim=1,
    ).numpy()


def _tm_float32(p, t, hp, ws):
    torch, tm_scc_module = _torch_and_tm()
    return tm_scc_module.spatial_correlation_coefficient(
        torch.from_numpy(np.array(p)), torch.from_numpy(np.array(t)),
        hp_filter=torch.tensor(hp), window_size=ws, reduction="none",
    ).numpy()


def test_live_golden_values_are_reproduced():
    for name in ("seed", "astronaut_rgb_quantized_and_noisy"):
        p, t, kwargs = _case(name)
        hp, ws = kwargs.get("hp_filter", jax_scc.DEFAULT_HP_FILTER), kwargs.get("window_size", 8)
        tm64 = _tm_float64_map(p, t, hp, ws).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(tm64, GOLDEN_FLOAT64[name], atol=1e-12, rtol=0)
    p, t, _ = _case("seed")
    assert abs(_tm_float32(p, t, jax_scc.DEFAULT_HP_FILTER, 8)[0] - SEED_TORCHMETRICS_FLOAT32) < 1e-7


@pytest.mark.parametrize(
    "hp,ws",
    [
        (jax_scc.DEFAULT_HP_FILTER, 7),
        (((1, 2, 0), (-3, 1, 0), (0, 0, -1)), 4),  # asymmetric
        (((1, -1), (-1, 1)), 3),  # even-sized filter
        (((1, 0, -1), (2, 0, -2), (1, -1, -1), (0, 0, 1)), 6),  # 4x3
    ],
)
def test_live_map_matches_torchmetrics(hp, ws):
    """On well-conditioned images (no flat regions) our map is torchmetrics'
    float64 map, and our scores are its float32 scores."""
    rng = np.random.default_rng(ws)
    t = rng.uniform(size=(2, 3, 19, 23)).astype(np.float32)
    p = (0.5 * t + 0.5 * rng.uniform(size=t.shape)).astype(np.float32)
    ours = np.asarray(jax_scc.scc_map(p, t, hp_filter=hp, window_size=ws))
    np.testing.assert_allclose(ours, _tm_float64_map(p, t, hp, ws), atol=1e-5, rtol=0)
    ours = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, hp, ws, reduction="none"))
    np.testing.assert_allclose(ours, _tm_float32(p, t, hp, ws), atol=1e-5, rtol=0)


def test_live_quantized_photo_torchmetrics_float32_is_off_ours_is_not():
    """On a quantized photograph torchmetrics' float32 map is off by O(0.1) per
    pixel and its score by ~1e-3 (the amount depends on torch's convolution
    kernels); ours stays at the float64 evaluation."""
    torch, tm_scc_module = _torch_and_tm()
    p, t, _ = _case("camera128_16levels_vs_original")
    hp = jax_scc.DEFAULT_HP_FILTER
    tm64 = _tm_float64_map(p, t, hp, 8)
    tm32 = tm_scc_module._scc_per_channel_compute(
        torch.from_numpy(p), torch.from_numpy(t), torch.tensor(hp, dtype=torch.float32)[None, None], 8
    ).numpy()
    assert np.abs(tm32 - tm64).max() > 0.05
    assert abs(tm32.mean() - tm64.mean()) > 1e-4
    assert np.abs(np.asarray(jax_scc.scc_map(p, t)) - tm64).max() < 1e-5
