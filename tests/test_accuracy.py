"""float32 accuracy against the float64 evaluation of the definition.

The contract (README, "Accuracy"): mean within 1e-6, every map pixel within 1e-5,
including quantized photographs, where torchmetrics' float32 map is off by O(0.1-1).
"""

import numpy as np
import pytest

import jax_scc
import reference as ref
from images import blurred, noisy, photo, quantize, seed_pair

MAP_TOL = 1e-5
MEAN_TOL = 1e-6

# torchmetrics 1.9.0, SpatialCorrelationCoefficient()(preds=recon, target=phantom) in
# float32, as printed by the seed example; and the float64 evaluation of the definition
# on the same float32 inputs (tests/reference.py; torchmetrics' own per-channel code run
# on float64 tensors gives 0.14591339670798803 too).
SEED_TORCHMETRICS_FLOAT32 = 0.14591339230537415
SEED_FLOAT64 = 0.14591339670798803


METHODS = ["slices", "conv"]


def _assert_close_to_float64(p, t, window_size, hp_filter=None, method="auto"):
    m = np.asarray(jax_scc.scc_map(p, t, hp_filter=hp_filter, window_size=window_size, method=method))
    hp_ref = ref.LAPLACIAN if hp_filter is None else np.asarray(hp_filter, np.float64)
    expected = ref.scc_map(p, t, hp_ref, window_size)
    pixel_err = np.abs(m - expected).max()
    score = jax_scc.spatial_correlation_coefficient(p, t, hp_filter=hp_filter, window_size=window_size, method=method)
    mean_err = abs(float(score) - expected.mean())
    assert pixel_err <= MAP_TOL, f"max pixel error {pixel_err:.2e}"
    assert mean_err <= MEAN_TOL, f"mean error {mean_err:.2e}"
    return pixel_err, mean_err


def test_seed_example():
    preds, target = seed_pair()
    score = float(jax_scc.spatial_correlation_coefficient(preds, target))
    assert abs(score - SEED_TORCHMETRICS_FLOAT32) < 1e-6
    assert abs(score - SEED_FLOAT64) < 1e-7
    _assert_close_to_float64(preds, target, 8)


PHOTOS = ["camera", "astronaut", "coins", "brick", "text"]


def _pairs(name):
    img = photo(name, 96)
    return {
        "quantized_vs_original": (quantize(img), img.astype(np.float32)),
        "quantized_vs_quantized_noisy": (quantize(img), quantize(noisy(img))),
        "blurred_vs_original": (blurred(img).astype(np.float32), img.astype(np.float32)),
        "noisy_vs_original": (noisy(img).astype(np.float32), img.astype(np.float32)),
    }


def _cases(windows):
    """Every photo and window with the default method; the conv path (same
    arithmetic, other pairing primitive) on two photos to keep the suite short."""
    return [(n, w, "slices") for n in PHOTOS for w in windows] + [
        (n, w, "conv") for n in ("camera", "text") for w in windows
    ]


@pytest.mark.parametrize("name, window_size, method", _cases([3, 4, 8, 16]))
def test_photographs_in_unit_range(name, window_size, method):
    """Float images in [0, 1]: 16 grey levels (k/15), blur, noise."""
    for case, (p, t) in _pairs(name).items():
        try:
            _assert_close_to_float64(p[None, None], t[None, None], window_size, method=method)
        except AssertionError as e:
            raise AssertionError(f"{name}/{case}/w={window_size}: {e}") from None


@pytest.mark.parametrize("name, window_size, method", _cases([1, 2, 3, 5, 8, 13]))
def test_integer_valued_photographs_any_window(name, window_size, method):
    """8-bit data: 16 grey levels of 0..255, blurred and rounded, noisy and rounded."""
    img = photo(name, 96)
    to8 = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    levels = (np.round(img * 15) * 17).astype(np.uint8)  # 16 grey levels of 0..255
    cases = {
        "16_levels_vs_8bit": (levels, to8(img)),
        "blurred8_vs_8bit": (to8(blurred(img)), to8(img)),
        "noisy8_vs_16_levels": (to8(noisy(img)), levels),
    }
    for case, (p, t) in cases.items():
        try:
            _assert_close_to_float64(p[None, None].astype(np.float32), t[None, None].astype(np.float32), window_size, method=method)
        except AssertionError as e:
            raise AssertionError(f"{name}/{case}/w={window_size}: {e}") from None
        # uint8 input directly is the same computation.
        a = float(jax_scc.spatial_correlation_coefficient(p[None], t[None], window_size=window_size))
        b = float(jax_scc.spatial_correlation_coefficient(p[None].astype(np.float32), t[None].astype(np.float32), window_size=window_size))
        assert a == b


@pytest.mark.parametrize(
    "hp_filter",
    [((0, -1, 0), (-1, 4, -1), (0, -1, 0)), ((1, -1), (-1, 1)), ((0.25, 0.5, 0.25), (0.5, -3, 0.5), (0.25, 0.5, 0.25))],
    ids=["laplacian4", "even2x2", "dyadic_fractions"],
)
@pytest.mark.parametrize("method", METHODS)
def test_quantized_photograph_other_zero_sum_filters(hp_filter, method):
    img = photo("camera", 96)
    _assert_close_to_float64(quantize(img)[None, None], img.astype(np.float32)[None, None], 8, hp_filter, method)


def test_flat_regions_give_exact_zeros():
    """Quantized images are mostly flat: their high-pass must be exactly 0 there,
    so windows inside flat regions score exactly 0 (as in float64)."""
    img = quantize(photo("camera", 96))[None, None]
    m = np.asarray(jax_scc.scc_map(img, quantize(noisy(photo("camera", 96)))[None, None]))
    expected = ref.scc_map(img, quantize(noisy(photo("camera", 96)))[None, None])
    assert np.count_nonzero(expected == 0) > 100
    np.testing.assert_array_equal(m[expected == 0], 0.0)


def test_constant_and_flat_images_score_zero():
    rng = np.random.default_rng(0)
    structured = rng.uniform(size=(2, 1, 24, 24)).astype(np.float32)
    for value in (0.0, 0.3, 1e6, -7.0):
        flat = np.full_like(structured, value)
        assert float(jax_scc.spatial_correlation_coefficient(flat, structured)) == 0.0
        assert float(jax_scc.spatial_correlation_coefficient(structured, flat)) == 0.0
        assert np.all(np.asarray(jax_scc.scc_map(flat, flat)) == 0.0)
    # A linear ramp is flat for the Laplacian (zero high-pass everywhere inside).
    ramp = np.add.outer(np.arange(24.0), 2 * np.arange(24.0)).astype(np.float32)[None]
    inner = np.asarray(jax_scc.scc_map(ramp, structured[:1, 0], window_size=3))[0, 2:-2, 2:-2]
    assert np.all(inner == 0.0)


def test_identical_images_score_one_where_there_is_structure():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(3, 2, 20, 20)).astype(np.float32)
    m = np.asarray(jax_scc.scc_map(x, x))
    np.testing.assert_allclose(m, 1.0, atol=1e-6)
    assert abs(float(jax_scc.spatial_correlation_coefficient(x, x)) - 1.0) < 1e-6
    assert abs(float(jax_scc.spatial_correlation_coefficient(x, -x)) + 1.0) < 1e-6


def test_invariant_to_brightness_offset_and_contrast():
    rng = np.random.default_rng(2)
    p = rng.uniform(size=(1, 32, 32)).astype(np.float32)
    t = rng.uniform(size=(1, 32, 32)).astype(np.float32)
    base = float(jax_scc.spatial_correlation_coefficient(p, t))
    shifted = float(jax_scc.spatial_correlation_coefficient(p * 4 + 100, t))
    assert abs(base - shifted) < 1e-5
