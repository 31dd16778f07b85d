"""The numbers: float32 results against the float64 evaluation of the definition.

The contract (README, "Accuracy"): mean within 1e-6, every map pixel within 1e-5,
including quantized photographs, where torchmetrics' float32 map is off by O(0.1-1).
Photographs are scored as one batch per window size, so that each configuration
compiles once.
"""

import numpy as np
import pytest

import jax_scc
import reference as ref
from images import SEED_FLOAT64, blurred, noisy, photo, quantize, seed_pair, structured_pair

MAP_TOL = 1e-5
MEAN_TOL = 1e-6


def assert_matches_float64(p, t, hp_filter=None, window_size=8, method="auto", scores=True, **options):
    """The map (per pixel) and, with ``scores``, the per-sample scores agree with
    tests/reference.py. (The scores are the map's mean, folded by the same code
    whatever the filter or window: checked where the fold can differ.)"""
    hp_ref = ref.LAPLACIAN if hp_filter is None else np.asarray(hp_filter, np.float64)
    expected = ref.scc_map(p, t, hp_ref, window_size, **options)
    m = np.asarray(jax_scc.scc_map(p, t, hp_filter, window_size, method=method, **options))
    assert m.shape == p.shape and m.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(m), np.isnan(expected))
    np.testing.assert_allclose(m, expected, atol=MAP_TOL, rtol=0, equal_nan=True)
    if not scores:
        return
    scores = np.asarray(
        jax_scc.spatial_correlation_coefficient(
            p, t, hp_filter, window_size, "none", method=method, **options
        )
    )
    expected_scores = ref.scores_of_map(expected, options.get("ignore_nans") or options.get("ignore_flat"))
    np.testing.assert_allclose(scores, expected_scores, atol=MEAN_TOL, rtol=0, equal_nan=True)


def test_seed_example_matches_float64():
    preds, target = seed_pair()
    assert abs(float(jax_scc.spatial_correlation_coefficient(preds, target)) - SEED_FLOAT64) < 1e-7
    assert_matches_float64(preds, target)


PHOTOS = ["camera", "astronaut", "coins", "brick", "text"]


def _unit_range_pairs(names):
    """Float images in [0, 1]: 16 grey levels (k/15), blur and noise, against the
    original, as one (N, 1, 96, 96) batch."""
    pairs = []
    for name in names:
        img = photo(name, 96)
        pairs += [
            (quantize(img), img),
            (quantize(img), quantize(noisy(img))),
            (blurred(img), img),
            (noisy(img), img),
        ]
    p = np.stack([a for a, _ in pairs])[:, None].astype(np.float32)
    t = np.stack([b for _, b in pairs])[:, None].astype(np.float32)
    return p, t


def _integer_valued_pairs(names):
    """8-bit data: 16 grey levels of 0..255, blurred and rounded, noisy and rounded."""
    to8 = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    pairs = []
    for name in names:
        img = photo(name, 96)
        levels = (np.round(img * 15) * 17).astype(np.uint8)
        pairs += [(levels, to8(img)), (to8(blurred(img)), to8(img)), (to8(noisy(img)), levels)]
    return np.stack([a for a, _ in pairs])[:, None], np.stack([b for _, b in pairs])[:, None]


@pytest.mark.parametrize("window_size", [3, 16])
def test_photographs_in_unit_range(window_size):
    assert_matches_float64(*_unit_range_pairs(PHOTOS), window_size=window_size)


@pytest.mark.parametrize("window_size", [1, 2, 13])
def test_integer_valued_photographs_any_window(window_size):
    p, t = _integer_valued_pairs(PHOTOS)
    assert_matches_float64(p.astype(np.float32), t.astype(np.float32), window_size=window_size, scores=False)
    # uint8 input is scored as its values: the same computation.
    a = jax_scc.spatial_correlation_coefficient(p, t, window_size=window_size, reduction="none")
    b = jax_scc.spatial_correlation_coefficient(
        p.astype(np.float32), t.astype(np.float32), window_size=window_size, reduction="none"
    )
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_photographs_with_conv_pairing():
    """The conv pairing (same arithmetic, another primitive) passes the same bar."""
    p, t = _unit_range_pairs(["camera", "text"])
    assert_matches_float64(p, t, window_size=5, method="conv", scores=False)


def test_photographs_with_direct_formulation():
    """The direct formulation (every window's values at once, centred on its
    centre pixel) passes the same bar, with 2 x 2 windows on quantized images
    too (where the doubling tree does not: see the README's Accuracy)."""
    p, t = _unit_range_pairs(["camera", "text"])
    assert_matches_float64(p, t, window_size=2, method="direct")


@pytest.mark.parametrize(
    "hp_filter",
    [((0.25, 0.5, 0.25), (0.5, -3, 0.5), (0.25, 0.5, 0.25))],
    ids=["dyadic_fractions"],
)
def test_quantized_photograph_other_zero_sum_filters(hp_filter):
    img = photo("camera", 96)
    assert_matches_float64(quantize(img)[None, None], img.astype(np.float32)[None, None], hp_filter, scores=False)


FILTERS = {
    "sym5x5": (
        (0, 0, -1, 0, 0),
        (0, -1, -2, -1, 0),
        (-1, -2, 16, -2, -1),
        (0, -1, -2, -1, 0),
        (0, 0, -1, 0, 0),
    ),
    "non_dyadic": ((0.3, -0.1, 0.0), (-0.7, 0.25, 0.1), (0.05, 0.0, 0.1)),
    "smoothing_nonzero_sum": ((1, 2, 1), (2, 4, 2), (1, 2, 1)),
    "single_tap": ((3.0,),),
}


EVEN4X3 = ((1, 0, -1), (2, 0, -2), (1, -1, -1), (0, 0, 1))


@pytest.mark.parametrize("name", ["non_dyadic", "smoothing_nonzero_sum", "single_tap"])
def test_filters_of_any_weights(name):
    """Non-dyadic, non-zero-sum and single-tap filters (other shapes: the
    ignore_nans tests below, and tests/test_torchmetrics.py)."""
    rng = np.random.default_rng(1)
    t = rng.uniform(size=(2, 2, 13, 17)).astype(np.float32)
    p = (0.6 * t + 0.4 * rng.uniform(size=t.shape)).astype(np.float32)
    assert_matches_float64(p, t, FILTERS[name], window_size=4, scores=False)


@pytest.mark.parametrize("window_size", [12])
def test_window_sizes_up_to_image_size(window_size):
    """w = H (the photographs above cover w = 1, 2, 3, 13 = 8 + 4 + 1 and 16)."""
    p, t = structured_pair((1, 1, 12, 19), seed=window_size)
    assert_matches_float64(p, t, window_size=window_size, scores=False)


def test_filter_orientation_is_a_true_convolution():
    """An asymmetric filter and its 180-degree rotation give different maps; the
    reference (which flips the kernel) pins which one is right."""
    p, t = structured_pair((1, 14, 14), seed=11)
    hp = np.array([[0, 0, 0], [0, 1, -1], [0, 0, 0]], np.float64)
    m = np.asarray(jax_scc.scc_map(p, t, hp, 3))
    m_rot = np.asarray(jax_scc.scc_map(p, t, hp[::-1, ::-1], 3))
    assert np.abs(m - m_rot).max() > 1e-2
    np.testing.assert_allclose(m, ref.scc_map(p, t, hp, 3), atol=MAP_TOL, rtol=0)


def test_flat_regions_give_exact_zeros():
    """Quantized images are mostly flat: their high-pass must be exactly 0 there,
    so windows inside flat regions score exactly 0 (as in float64)."""
    img = photo("camera", 96)
    p, t = quantize(img)[None, None], quantize(noisy(img))[None, None]
    m = np.asarray(jax_scc.scc_map(p, t))
    expected = ref.scc_map(p, t)
    assert np.count_nonzero(expected == 0) > 100
    np.testing.assert_array_equal(m[expected == 0], 0.0)


def test_constant_images_score_zero_and_identical_ones_one():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 1, 24, 24)).astype(np.float32)
    for value in (0.0, 0.3, 1e6, -7.0):
        flat = np.full_like(x, value)
        assert float(jax_scc.spatial_correlation_coefficient(flat, x)) == 0.0
        assert float(jax_scc.spatial_correlation_coefficient(x, flat)) == 0.0
        assert np.all(np.asarray(jax_scc.scc_map(flat, flat)) == 0.0)
    np.testing.assert_allclose(np.asarray(jax_scc.scc_map(x, x)), 1.0, atol=1e-6)
    assert np.all(np.asarray(jax_scc.scc_map(x, x, window_size=1)) == 0)  # one pixel: no variance
    assert abs(float(jax_scc.spatial_correlation_coefficient(x, -x)) + 1.0) < 1e-6
    # A linear ramp is flat for the Laplacian (zero high-pass everywhere inside).
    ramp = np.add.outer(np.arange(24.0), 2 * np.arange(24.0)).astype(np.float32)[None]
    inner = np.asarray(jax_scc.scc_map(ramp, x[:1, 0], window_size=3))[0, 2:-2, 2:-2]
    assert np.all(inner == 0.0)


def test_invariant_to_brightness_contrast_and_filter_scale():
    """SCC ignores offsets and gains of the images and the scale of the filter: a
    filter with weights of 1e30 (whose squares would overflow) or 1e-30 gives the
    numbers of the unit filter."""
    p, t = structured_pair((1, 32, 32), seed=2)
    base = float(jax_scc.spatial_correlation_coefficient(p, t))
    assert abs(float(jax_scc.spatial_correlation_coefficient(p * 4 + 100, t)) - base) < 1e-5
    lap = np.asarray(jax_scc.DEFAULT_HP_FILTER)
    for scale in (1e30, 1e-30):
        m = jax_scc.scc_map(p, t, lap * scale)
        assert np.all(np.isfinite(np.asarray(m)))
        np.testing.assert_allclose(np.asarray(m), np.asarray(jax_scc.scc_map(p, t)), atol=1e-6)


def test_ignore_nans_footprint_is_where_nan_arithmetic_gives_nan():
    """The reference's two ways of stating 'invalid' agree: explicit footprint
    loops and NaN propagation through the float64 definition (every tap, even 0)."""
    p, t = structured_pair((1, 1, 20, 23), seed=3, dtype=np.float64)
    p[0, 0, 0, 5] = np.nan
    p[0, 0, 9:11, 19:] = np.nan
    t[0, 0, 15, 0] = np.nan
    for hp in [ref.LAPLACIAN, np.array([[1.0, -1.0]]), np.array(EVEN4X3, float)]:
        for w in (1, 2, 5, 8):
            with np.errstate(invalid="ignore"):
                propagated = np.isnan(ref.scc_map(p, t, hp, w))
            mask = np.isnan(ref.scc_map(p, t, hp, w, ignore_nans=True))
            np.testing.assert_array_equal(mask, propagated)


@pytest.mark.parametrize(
    "hp_filter, window_size, ignore_flat",
    [(None, 8, False), (EVEN4X3, 5, True), (((1, -2, 1),), 1, False)],
    ids=["laplacian-8", "even4x3-5-ignore_flat", "row1x3-1"],
)
def test_ignore_nans_on_borders_corners_and_blocks(hp_filter, window_size, ignore_flat):
    """NaN on every border and in corners (the reflect padding sees them again),
    a block inside, a whole sample and a channel alone; once with ignore_flat
    too (a flat region in the target)."""
    p, t = structured_pair((3, 2, 17, 19), seed=2)
    p[0, 0, 0, 3] = np.nan  # top edge
    p[0, 0, 7:9, -1] = np.nan  # right edge
    t[0, 1, -1, -1] = np.nan  # bottom-right corner, other channel
    t[1, 0, 0, 0] = np.nan  # top-left corner
    p[1, 1, 6:9, 5:11] = np.nan  # a block inside
    t[2] = np.nan  # a whole sample: scores NaN
    if ignore_flat:
        t[1, 1, 9:, :] = 0.5  # flat
    assert_matches_float64(p, t, hp_filter, window_size, ignore_nans=True, ignore_flat=ignore_flat)


def test_ignore_flat_leaves_flat_target_windows_out():
    """Only windows where the target has structure count: identical images score 1,
    and the prediction cannot gain or lose anything in the target's flat windows."""
    img = photo("camera", 96)
    target = quantize(img)[None, None]  # mostly flat
    preds = np.stack([quantize(noisy(img)), quantize(img)])[:, None]
    target = np.concatenate([target, target])
    assert_matches_float64(preds, target, ignore_flat=True)
    scores = np.asarray(jax_scc.spatial_correlation_coefficient(preds, target, reduction="none", ignore_flat=True))
    assert abs(scores[1] - 1.0) < 1e-6
    plain = np.asarray(jax_scc.spatial_correlation_coefficient(preds, target, reduction="none"))
    assert plain[1] < 0.9  # the flat windows' zeros pull the default score down
    flat = np.zeros_like(target[:1])
    assert np.isnan(float(jax_scc.spatial_correlation_coefficient(preds[:1], flat, ignore_flat=True)))


def test_high_pass_with_a_grid_per_pixel_is_the_planes_high_pass():
    """The accelerators' high-pass (the exact split on each output's own grid,
    the reflection at the borders from thin strips or from a reflected copy)
    gives the plane-grid high-pass's numbers: to the bit on quantized images
    for dyadic filters (both exact), within float32 rounding otherwise; odd,
    even and non-square filters."""
    import jax

    from jax_scc._src import highpass

    quantized = quantize(photo("camera", 48))[None, None, :41, :37]
    smooth = photo("astronaut", 48).astype(np.float32)[None, None, :41, :37]
    for name, hp_filter in (("laplacian", jax_scc.DEFAULT_HP_FILTER), ("sym5x5", FILTERS["sym5x5"]),
                            ("even4x3", EVEN4X3), ("non_dyadic", FILTERS["non_dyadic"])):
        hp_filter = tuple(tuple(float(v) for v in row) for row in hp_filter)
        for borders in ("strips", "padded"):
            local = jax.jit(lambda x: highpass.high_pass_local_grid(x, hp_filter, borders))
            for x in (quantized, smooth):
                got, want = np.asarray(local(x)), np.asarray(highpass.high_pass(x, hp_filter))
                if x is quantized and name != "non_dyadic":
                    np.testing.assert_array_equal(got, want, err_msg=f"{name} {borders}")
                else:
                    np.testing.assert_allclose(got, want, rtol=0, atol=4e-7 * np.abs(want).max(), err_msg=f"{name} {borders}")
