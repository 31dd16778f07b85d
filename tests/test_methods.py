"""The implementations behind ``method=``: chunked shifted slices and whole-batch lax.conv.

Both must give the float64 definition's numbers (the accuracy suite runs each),
agree with each other, and survive every way the slice path walks a batch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference as ref
from jax_scc._src import scc as scc_impl
from jax_scc._src import validation
from jax_scc._src.fusion import materialise
from jax_scc._src.windows import local_moments

METHODS = ["slices", "conv"]


def _pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    t = np.round(rng.uniform(size=shape) * 15) / 15  # flat regions and edges
    p = t + 0.1 * rng.normal(size=shape)
    return p.astype(np.float32), t.astype(np.float32)


@pytest.fixture
def small_chunks(monkeypatch):
    """Makes the slice path walk tiny batches in many chunks (and recompile)."""

    def set_chunk(pixels, min_band_rows=4):
        monkeypatch.setattr(scc_impl, "_CHUNK_PIXELS", pixels)
        monkeypatch.setattr(scc_impl, "_MIN_BAND_ROWS", min_band_rows)
        scc_impl._per_sample_impl.clear_cache()
        scc_impl._scc_map_impl.clear_cache()

    yield set_chunk
    scc_impl._per_sample_impl.clear_cache()
    scc_impl._scc_map_impl.clear_cache()


def test_auto_resolves_per_backend():
    expected = "slices" if jax.default_backend() in ("cpu", "gpu") else "conv"
    assert validation.make_config(None, 8, "NCHW").method == expected
    assert validation.make_config(None, 8, "NCHW", "conv").method == "conv"


@pytest.mark.parametrize("bad", ["fast", "Slices", None, 3])
def test_unknown_method_is_rejected(bad):
    x = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="`method` must be one of 'auto', 'slices' or 'conv'"):
        jax_scc.spatial_correlation_coefficient(x, x, method=bad)
    with pytest.raises(ValueError, match="`method`"):
        jax_scc.scc_map(x, x, method=bad)


EVEN = ((1, -2), (3, 0.5))
ASYM_3X4 = ((0, -1, 0, 1), (2, 1, -3, 0), (1, 0, 0, -1))


@pytest.mark.parametrize(
    "window_size, hp_filter",
    [(1, None), (2, EVEN), (5, ASYM_3X4), (8, None), (11, EVEN), (4, ASYM_3X4)],
)
def test_methods_match_float64_and_each_other(window_size, hp_filter):
    p, t = _pair((2, 2, 19, 23))
    hp_ref = ref.LAPLACIAN if hp_filter is None else np.asarray(hp_filter, np.float64)
    expected = ref.scc_map(p, t, hp_ref, window_size)
    maps = {}
    for method in METHODS:
        m = np.asarray(jax_scc.scc_map(p, t, hp_filter, window_size, method=method))
        np.testing.assert_allclose(m, expected, atol=1e-5, rtol=0, err_msg=method)
        s = np.asarray(
            jax_scc.spatial_correlation_coefficient(
                p, t, hp_filter, window_size, reduction="none", method=method
            )
        )
        np.testing.assert_allclose(s, expected.mean(axis=(1, 2, 3)), atol=1e-6, rtol=0)
        maps[method] = m
    np.testing.assert_allclose(maps["slices"], maps["conv"], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "shape, chunk, window_size, data_format",
    [
        ((6, 2, 12, 10), 500, 4, "NCHW"),  # several whole samples per step (6 = 2 x 3 steps)
        ((5, 12, 10, 3), 400, 5, "NHWC"),  # one sample per step (5 is prime)
        ((3, 12, 10, 2), 100, 4, "NHWC"),  # a sample is larger than a chunk: one plane per step
        ((4, 12, 10), 100, 5, "NCHW"),  # 3-D input
        ((2, 2, 24, 10), 100, 4, "NCHW"),  # planes walked in bands of 8 rows (+ halo)
        ((2, 24, 10, 2), 100, 5, "NHWC"),  # the same in NHWC, odd window
        ((1, 1, 24, 10), 100, 5, "NCHW"),  # one plane, in bands
        ((2, 24, 10), 50, 4, "NHWC"),  # 3-D, bands of 5 rows
        ((2, 2, 23, 10), 100, 4, "NCHW"),  # prime height: no band size fits, whole planes
    ],
)
def test_chunked_walks_give_the_unchunked_result(
    small_chunks, shape, chunk, data_format, window_size
):
    p, t = _pair(shape, seed=3)
    kwargs = dict(window_size=window_size, data_format=data_format, method="slices")
    whole_map = np.asarray(jax_scc.scc_map(p, t, **kwargs))
    whole = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none", **kwargs))
    small_chunks(chunk)
    x4, fmt4 = scc_impl._as_4d(jnp.asarray(p), data_format)
    plan = scc_impl._plan(scc_impl._to_nchw(x4, fmt4).shape)
    on_cpu = jax.default_backend() == "cpu"
    assert plan.steps > 1 or (plan.samples == 0 and on_cpu) or not on_cpu
    chunked_map = np.asarray(jax_scc.scc_map(p, t, **kwargs))
    chunked = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none", **kwargs))
    np.testing.assert_allclose(chunked_map, whole_map, atol=1e-6, rtol=0)
    np.testing.assert_allclose(chunked, whole, atol=5e-7, rtol=0)  # summation order
    # and the float64 definition
    nhwc = data_format == "NHWC" and len(shape) == 4
    pc, tc = (np.moveaxis(p, -1, 1), np.moveaxis(t, -1, 1)) if nhwc else (p, t)
    expected = ref.scc_map(pc, tc, ref.LAPLACIAN, window_size)
    chunked_map = np.moveaxis(chunked_map, -1, 1) if nhwc else chunked_map
    np.testing.assert_allclose(chunked_map, expected, atol=1e-5, rtol=0)
    per_sample = expected.reshape(expected.shape[0], -1).mean(axis=1)
    np.testing.assert_allclose(chunked, per_sample, atol=1e-6)


def test_band_rows_divide_the_height():
    assert scc_impl._band_rows(1024, 1024, 8) == 256
    assert scc_impl._band_rows(512, 512, 8) == 512  # fits a chunk: no bands
    assert scc_impl._band_rows(1031, 1024, 8) == 1031  # prime: no band size fits
    rows = scc_impl._band_rows(2048, 3000, 8)
    assert 2048 % rows == 0 and rows * 3000 <= scc_impl._CHUNK_PIXELS


def test_chunked_path_keeps_nan_local_to_its_sample(small_chunks):
    small_chunks(100)
    p, t = _pair((3, 2, 12, 10), seed=4)
    p[1, 1, 5, 5] = np.nan
    s = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none", method="slices"))
    assert np.isnan(s[1]) and np.all(np.isfinite(s[[0, 2]]))


@pytest.mark.parametrize("method", METHODS)
def test_grad_and_vmap_for_each_method(method):
    p, t = _pair((2, 1, 16, 16), seed=5)
    p[0, 0, :8, :8] = 0.5  # flat windows: zero variance
    loss = lambda x: 1.0 - jax_scc.spatial_correlation_coefficient(x, t, method=method)
    g = jax.jit(jax.grad(loss))(p)
    assert np.all(np.isfinite(np.asarray(g)))
    g_other = jax.grad(
        lambda x: 1.0 - jax_scc.spatial_correlation_coefficient(x, t, method="slices")
    )(p)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_other), atol=1e-6)
    stack_p, stack_t = np.stack([p, t, p]), np.stack([t, t, p])
    per = jax.vmap(lambda a, b: jax_scc.spatial_correlation_coefficient(a, b, method=method))
    loop = [
        float(jax_scc.spatial_correlation_coefficient(a, b, method=method))
        for a, b in zip(stack_p, stack_t)
    ]
    np.testing.assert_allclose(np.asarray(per(stack_p, stack_t)), loop, atol=1e-7)


@pytest.mark.parametrize("w", [2, 3, 8, 17, 32])
def test_window_methods_agree_bitwise_on_moments(w):
    """The conv path forms the same pairs as the slice path (each a single
    rounded operation), so the moments agree to the last bit or one rounding."""
    rng = np.random.default_rng(6)
    a = jnp.asarray(rng.normal(size=(2, 40, 37)).astype(np.float32))
    b = jnp.asarray(rng.normal(size=(2, 40, 37)).astype(np.float32))
    for x, y in zip(local_moments(a, b, w, "slices"), local_moments(a, b, w, "conv")):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-7, atol=1e-12)


def test_materialise_is_the_identity_with_nan_and_under_transforms():
    x = jnp.asarray([[np.nan, 1.0], [2.0, -np.inf]], jnp.float32)
    y = materialise({"a": x, "b": x * 2})
    np.testing.assert_array_equal(np.asarray(y["a"]), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(y["b"]), np.asarray(x * 2))
    f = lambda v: jnp.sum(materialise((v * v,))[0])
    v = jnp.arange(4.0).reshape(2, 2)
    np.testing.assert_allclose(np.asarray(jax.grad(f)(v)), 2 * np.asarray(v))
    np.testing.assert_allclose(np.asarray(jax.vmap(f)(v)), np.sum(np.asarray(v) ** 2, axis=1))
    assert "conditional" in jax.jit(f).lower(v).compile().as_text()
