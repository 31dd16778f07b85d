"""NaN/Inf handling (per sample, local in the map) and a large batch that must not crash."""

import numpy as np
import pytest

import jax
import jax_scc


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["preds", "target"])
def test_non_finite_pixel_poisons_only_its_sample_and_nearby_windows(bad, where):
    rng = np.random.default_rng(0)
    t = rng.uniform(size=(3, 2, 32, 32)).astype(np.float32)
    p = (0.5 * t + 0.5 * rng.uniform(size=t.shape)).astype(np.float32)
    clean_scores = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none"))
    clean_map = np.asarray(jax_scc.scc_map(p, t))
    arr = p.copy() if where == "preds" else t.copy()
    arr[1, 0, 10, 20] = bad
    args = (arr, t) if where == "preds" else (p, arr)
    scores = np.asarray(jax_scc.spatial_correlation_coefficient(*args, reduction="none"))
    assert np.isnan(scores[1])
    np.testing.assert_array_equal(scores[[0, 2]], clean_scores[[0, 2]])
    assert np.isnan(float(jax_scc.spatial_correlation_coefficient(*args)))
    m = np.asarray(jax_scc.scc_map(*args))
    # The high-pass spreads the pixel by 1 (3x3 filter), the 8x8 window by 4 before / 3 after.
    reach = np.zeros((32, 32), bool)
    reach[10 - 1 - 3 : 10 + 1 + 4 + 1, 20 - 1 - 3 : 20 + 1 + 4 + 1] = True
    assert np.all(np.isnan(m[1, 0][reach]))
    assert np.all(np.isfinite(m[1, 0][~reach]))
    np.testing.assert_allclose(m[1, 0][~reach], clean_map[1, 0][~reach], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(m[1, 1], clean_map[1, 1])  # other channel untouched


def test_large_batch_runs_within_memory():
    """(8, 3, 1024, 1024) float32: a dense w x w conv box filter dies with std::bad_alloc
    on a 24 GB machine; this must run, and equal the per-sample evaluation."""
    key1, key2 = jax.random.split(jax.random.key(0))
    t = jax.random.uniform(key1, (8, 3, 1024, 1024))
    p = 0.5 * t + 0.5 * jax.random.uniform(key2, t.shape)
    scores = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none"))
    assert scores.shape == (8,) and np.all(np.isfinite(scores))
    for i in (0, 7):
        alone = float(jax_scc.spatial_correlation_coefficient(p[i : i + 1], t[i : i + 1]))
        assert abs(alone - scores[i]) < 1e-6
    assert np.all((scores > 0.3) & (scores < 0.9))
