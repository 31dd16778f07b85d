"""The SCCs of remote sensing (toolbox sCC, Zhou's global SCC) against float64
NumPy references written from their definitions (tests/reference_remote_sensing.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference_remote_sensing as R
from jax_scc._src import remote_sensing as rs

TOL = 1e-6
FOUR_NEIGHBOURS = [[0, -1, 0], [-1, 4, -1], [0, -1, 0]]


def _images(n=2, c=4, h=20, w=24, seed=0):
    """Bands with flat regions, quantized levels and noise."""
    rng = np.random.default_rng(seed)
    t = np.round(np.kron(rng.random((n, c, h // 4, w // 4)), np.ones((4, 4))) * 15) / 15
    p = t + 0.05 * rng.standard_normal(t.shape)
    p[:, :, : h // 2, : w // 2] = t[:, :, : h // 2, : w // 2]  # identical corner
    return p.astype(np.float32), t.astype(np.float32)


def _per_sample(ref, p, t, **kw):
    out = [ref(a, b, **kw) for a, b in zip(p, t)]
    return np.array([o[0] for o in out]), np.stack([o[1] for o in out])


def test_toolbox_scc_matches_float64_definition():
    p, t = _images()
    samples, bands = _per_sample(R.toolbox_scc, p, t)
    np.testing.assert_allclose(jax_scc.pansharpening_scc(p, t, reduction="none"), samples, atol=TOL, rtol=0)
    np.testing.assert_allclose(jax_scc.pansharpening_scc(p, t, reduction="none", per_band=True), bands, atol=TOL, rtol=0)
    np.testing.assert_allclose(jax_scc.pansharpening_scc(p, t), samples.mean(), atol=TOL, rtol=0)
    np.testing.assert_allclose(jax_scc.pansharpening_scc(p, t, per_band=True), bands.mean(0), atol=TOL, rtol=0)
    # The map sums to the score; channels-last and (N, H, W) layouts.
    m = jax_scc.pansharpening_scc_map(p, t)
    assert m.shape == (2, 18, 22)
    np.testing.assert_allclose(m, np.stack([R.toolbox_map(a, b) for a, b in zip(p, t)]), atol=TOL, rtol=0)
    nhwc = jax_scc.pansharpening_scc(p.transpose(0, 2, 3, 1), t.transpose(0, 2, 3, 1), "none", data_format="NHWC")
    np.testing.assert_allclose(nhwc, samples, atol=TOL, rtol=0)
    np.testing.assert_allclose(
        jax_scc.pansharpening_scc(p[:, 0], t[:, 0], "none"), bands[:, 0], atol=TOL, rtol=0
    )


@pytest.mark.parametrize("hp_filter", [None, FOUR_NEIGHBOURS])
def test_zhou_global_scc_matches_float64_definition(hp_filter):
    p, t = _images(seed=1)
    kw = {} if hp_filter is None else {"hp_filter": np.array(hp_filter, np.float64)}
    samples, bands = _per_sample(R.zhou_scc, p, t, **kw)
    got = jax_scc.global_scc(p, t, hp_filter, reduction="none", per_band=True)
    np.testing.assert_allclose(got, bands, atol=TOL, rtol=0)
    np.testing.assert_allclose(jax_scc.global_scc(p, t, hp_filter, "none"), samples, atol=TOL, rtol=0)
    assert float(jax_scc.global_scc(t, t, hp_filter)) == pytest.approx(1.0, abs=TOL)


def test_flat_bands_score_zero_and_nans():
    p, t = _images(n=1, c=2)
    t[0, 1] = 0.0  # a zero band: no edges (the toolbox's zero padding makes the
    # border of any other constant band an edge), no high-pass variance
    assert float(jax_scc.pansharpening_scc(p, t, per_band=True)[1]) == 0.0
    assert float(jax_scc.global_scc(p, t, per_band=True)[1]) == 0.0
    # NaN poisons its sample by default; ignore_nans leaves its footprint out.
    hole = p.copy()
    hole[0, 0, 5:8, 6:9] = np.nan
    assert np.isnan(jax_scc.pansharpening_scc(hole, t))
    for name, fn in (("toolbox", jax_scc.pansharpening_scc), ("zhou", jax_scc.global_scc)):
        got = fn(hole, t, per_band=True, ignore_nans=True)
        # Reference: the features of the images with NaN read as 0, summed where
        # no footprint pixel is NaN (the 3x3 neighbourhood, cropped / reflected).
        band, tb = np.nan_to_num(hole[0, 0]), t[0, 0].astype(np.float64)
        if name == "toolbox":
            f, g = R.sobel_magnitude(band), R.sobel_magnitude(tb)
            bad = np.zeros(f.shape, bool)
            bad[5 - 1 - 1 : 8 - 1 + 1, 6 - 1 - 1 : 9 - 1 + 1] = True  # cropped, then dilated
            keep = ~bad
            ref = np.sum(f[keep] * g[keep]) / np.sqrt(np.sum(f[keep] ** 2) * np.sum(g[keep] ** 2))
        else:
            f, g = R._high_pass(band.astype(np.float64), R.LAPLACIAN), R._high_pass(tb, R.LAPLACIAN)
            keep = np.ones(f.shape, bool)
            keep[4:9, 5:10] = False
            ref = np.corrcoef(f[keep], g[keep])[0, 1]
        assert abs(float(got[0]) - ref) <= TOL, name
        assert np.isfinite(got).all()


def test_jit_vmap_grad():
    p, t = _images(n=3, c=2, h=16, w=16, seed=2)
    for fn in (jax_scc.pansharpening_scc, jax_scc.global_scc):
        stacked = jax.vmap(lambda a, b: fn(a, b, reduction="none"))(p[:, None], t[:, None])
        np.testing.assert_allclose(stacked[:, 0], fn(p, t, reduction="none"), atol=1e-7)
        grad = jax.jit(jax.grad(lambda a: fn(a, t)))(p)
        assert np.isfinite(grad).all() and float(jnp.abs(grad).max()) > 0
    # The gradient is that of the definition (written in jnp with plain sums).
    def naive_toolbox(a):
        f, g = (jax.vmap(jax.vmap(rs.sobel_magnitude))(x[..., 1:-1, 1:-1]) for x in (a, t))
        per = jnp.sum(f * g, (1, 2, 3)) / jnp.sqrt(jnp.sum(f * f, (1, 2, 3)) * jnp.sum(g * g, (1, 2, 3)))
        return jnp.mean(per)

    ours = jax.grad(jax_scc.pansharpening_scc)(p, t)
    np.testing.assert_allclose(ours, jax.grad(naive_toolbox)(p), atol=1e-4 * float(jnp.abs(ours).max()))  # float32 both
    # p has flat blocks (Sobel magnitude exactly 0) and the grads above are
    # finite; a zero image (no edge at all, a zero denominator) gets exactly 0.
    assert np.all(jax.grad(jax_scc.pansharpening_scc)(np.zeros_like(p), t) == 0)


def test_pooled_state_streams_and_merges():
    p, t = _images(n=6, c=3, h=16, w=20, seed=3)
    p[5] = np.nan  # the padding of the last batch: masked out
    mask = np.arange(6) < 5
    f = np.stack([[R.sobel_magnitude(b) for b in im] for im in p[:5]])
    g = np.stack([[R.sobel_magnitude(b) for b in im] for im in t[:5]])
    hp = lambda x: np.stack([[R._high_pass(b.astype(np.float64), R.LAPLACIAN) for b in im] for im in x])
    fz, gz = hp(p[:5]), hp(t[:5])
    expected = {
        "toolbox": [np.sum(f[:, c] * g[:, c]) / np.sqrt(np.sum(f[:, c] ** 2) * np.sum(g[:, c] ** 2)) for c in range(3)],
        "zhou": [np.corrcoef(fz[:, c].ravel(), gz[:, c].ravel())[0, 1] for c in range(3)],
    }
    pooled_toolbox = np.sum(f * g) / np.sqrt(np.sum(f * f) * np.sum(g * g))
    for definition in ("toolbox", "zhou"):
        # One trace per definition for the empty and the updated state alike.
        chex.clear_trace_counter()
        step = jax.jit(chex.assert_max_traces(jax_scc.pooled_scc_update, n=1))
        s = jax_scc.pooled_scc_init(3, definition)
        parts = []
        for i in range(3):
            part = step(jax_scc.pooled_scc_init(3, definition), p[2 * i : 2 * i + 2], t[2 * i : 2 * i + 2],
                        mask=mask[2 * i : 2 * i + 2])
            s = step(s, p[2 * i : 2 * i + 2], t[2 * i : 2 * i + 2], mask=mask[2 * i : 2 * i + 2])
            parts.append(part)
        bands = jax_scc.pooled_scc_compute(s, per_band=True)
        np.testing.assert_allclose(bands, expected[definition], atol=TOL, rtol=0)
        # Merging in another order gives the same moments.
        merged = jax_scc.pooled_scc_merge(parts[2], jax_scc.pooled_scc_merge(parts[1], parts[0]))
        np.testing.assert_allclose(jax_scc.pooled_scc_compute(merged, per_band=True), bands, atol=1e-7)
        overall = float(jax_scc.pooled_scc_compute(s))
        want = pooled_toolbox if definition == "toolbox" else np.mean(expected["zhou"])
        assert abs(overall - want) <= TOL
        # One sample: the functional's score.
        fn = jax_scc.pansharpening_scc if definition == "toolbox" else jax_scc.global_scc
        one = jax_scc.pooled_scc_update(jax_scc.pooled_scc_init(3, definition), p[:1], t[:1])
        assert abs(float(jax_scc.pooled_scc_compute(one)) - float(fn(p[:1], t[:1]))) <= TOL
    with pytest.raises(ValueError, match="pool differently"):
        jax_scc.pooled_scc_merge(jax_scc.pooled_scc_init(3, "zhou"), jax_scc.pooled_scc_init(3))
    with pytest.raises(ValueError, match="bands"):
        jax_scc.pooled_scc_update(jax_scc.pooled_scc_init(2), p, t)


def test_double_float_sums_keep_what_float32_loses():
    rng = np.random.default_rng(4)
    x = (1 + 1e-3 * rng.standard_normal((3, 1 << 16))).astype(np.float32)
    x[:, 0] = 1e8  # and a large value that a float32 running sum would swallow ones into
    exact = x.astype(np.float64).sum(-1)
    np.testing.assert_allclose(rs.accurate_sum(jnp.asarray(x), (-1,)), exact, rtol=1e-7, atol=0)


def test_bad_options():
    p, t = _images(n=1, c=1)
    with pytest.raises(ValueError, match="at least 3x3"):
        jax_scc.pansharpening_scc(p[..., :2, :], t[..., :2, :])
    with pytest.raises(ValueError, match="definition"):
        jax_scc.pooled_scc_init(1, "sewar")
    with pytest.raises(ValueError, match="hp_filter"):
        jax_scc.pooled_scc_init(1, "toolbox", hp_filter=FOUR_NEIGHBOURS)
    with pytest.raises(TypeError, match="per_band"):
        jax_scc.global_scc(p, t, per_band=1)
    with pytest.raises(ValueError, match="same shape"):
        jax.jit(jax_scc.global_scc)(p, t[..., 1:])
