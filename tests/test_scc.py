"""Values of scc_map / spatial_correlation_coefficient against the float64 reference.

Configurations: layouts, ranks, dtypes, window sizes, filters (odd, even,
asymmetric, non-zero-sum, non-dyadic), non-square images, jit / no-jit.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference as ref

MAP_TOL = 1e-5  # per pixel, float32 vs. the float64 evaluation
MEAN_TOL = 1e-6

FILTERS = {
    "laplacian": None,
    "laplacian4": ((0, -1, 0), (-1, 4, -1), (0, -1, 0)),
    "asymmetric3x3": ((1, 2, 0), (-3, 1, 0), (0, 0, -1)),
    "even2x2": ((1, -1), (-1, 1)),
    "even4x3": ((1, 0, -1), (2, 0, -2), (1, -1, -1), (0, 0, 1)),
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


def _images(shape, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    t = rng.uniform(size=shape)
    p = 0.6 * t + 0.4 * rng.uniform(size=shape)
    return p.astype(dtype), t.astype(dtype)


def _call(fn, use_jit, **config):
    """fn(preds, target) with static config, optionally under the user's own jit."""
    f = functools.partial(fn, **config)
    return jax.jit(f) if use_jit else f


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("filter_name", sorted(FILTERS))
def test_filters_match_reference(filter_name, use_jit):
    hp = FILTERS[filter_name]
    p, t = _images((2, 2, 13, 17), seed=1)
    m = _call(jax_scc.scc_map, use_jit, hp_filter=hp, window_size=4)(p, t)
    hp_ref = ref.LAPLACIAN if hp is None else np.asarray(hp, np.float64)
    expected = ref.scc_map(p, t, hp_ref, 4)
    assert m.shape == p.shape and m.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(m), expected, atol=MAP_TOL, rtol=0)
    s = _call(jax_scc.spatial_correlation_coefficient, use_jit, hp_filter=hp, window_size=4)(p, t)
    assert abs(float(s) - expected.mean()) < MEAN_TOL


@pytest.mark.parametrize("window_size", [1, 2, 3, 4, 5, 7, 8, 11, 12])
def test_window_sizes_up_to_image_size(window_size):
    p, t = _images((1, 1, 12, 19), seed=window_size)
    m = jax_scc.scc_map(p, t, window_size=window_size)
    expected = ref.scc_map(p, t, window_size=window_size)
    np.testing.assert_allclose(np.asarray(m), expected, atol=MAP_TOL, rtol=0)
    if window_size == 1:  # one pixel has no variance: the map is exactly 0
        assert np.all(np.asarray(m) == 0)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "shape,data_format",
    [
        ((2, 3, 16, 21), "NCHW"),
        ((2, 16, 21, 3), "NHWC"),
        ((3, 16, 21), "NCHW"),
        ((3, 16, 21), "NHWC"),
        ((1, 1, 9, 30), "NCHW"),
        ((1, 30, 9, 1), "NHWC"),
    ],
)
def test_layouts(shape, data_format, use_jit):
    p, t = _images(shape, seed=2)
    m = _call(jax_scc.scc_map, use_jit, window_size=5, data_format=data_format)(p, t)
    expected = ref.scc_map(p, t, window_size=5, data_format=data_format)
    assert m.shape == shape
    np.testing.assert_allclose(np.asarray(m), expected, atol=MAP_TOL, rtol=0)
    per_sample = _call(
        jax_scc.spatial_correlation_coefficient,
        use_jit,
        window_size=5,
        data_format=data_format,
        reduction="none",
    )(p, t)
    assert per_sample.shape == (shape[0],)
    np.testing.assert_allclose(
        np.asarray(per_sample),
        ref.scc_per_sample(p, t, window_size=5, data_format=data_format),
        atol=MEAN_TOL,
        rtol=0,
    )


def test_nhwc_equals_nchw():
    p, t = _images((2, 3, 20, 24), seed=3)
    nchw = jax_scc.scc_map(p, t)
    nhwc = jax_scc.scc_map(p.transpose(0, 2, 3, 1), t.transpose(0, 2, 3, 1), data_format="NHWC")
    np.testing.assert_array_equal(np.asarray(nchw), np.asarray(nhwc).transpose(0, 3, 1, 2))


def test_channels_are_independent():
    p, t = _images((2, 3, 16, 16), seed=4)
    whole = np.asarray(jax_scc.scc_map(p, t))
    for c in range(3):
        alone = np.asarray(jax_scc.scc_map(p[:, c], t[:, c]))
        np.testing.assert_allclose(whole[:, c], alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("reduction", ["mean", "none", None])
def test_reductions(reduction):
    p, t = _images((4, 2, 16, 16), seed=5)
    out = jax_scc.spatial_correlation_coefficient(p, t, reduction=reduction)
    per_sample = ref.scc_per_sample(p, t)
    if reduction == "mean":
        assert out.shape == () and abs(float(out) - per_sample.mean()) < MEAN_TOL
    else:
        assert out.shape == (4,)
        np.testing.assert_allclose(np.asarray(out), per_sample, atol=MEAN_TOL, rtol=0)


@pytest.mark.parametrize(
    "dtype", [jnp.float16, jnp.bfloat16, jnp.uint8, jnp.int32, jnp.bool_], ids=str
)
def test_low_precision_and_integer_inputs_are_scored_in_float32(dtype):
    rng = np.random.default_rng(6)
    if dtype == jnp.bool_:
        p, t = rng.uniform(size=(2, 16, 16)) > 0.5, rng.uniform(size=(2, 16, 16)) > 0.3
    else:
        p = rng.integers(0, 200, size=(2, 16, 16))
        t = rng.integers(0, 200, size=(2, 16, 16))
    p, t = jnp.asarray(p, dtype), jnp.asarray(t, dtype)
    m = jax_scc.scc_map(p, t, window_size=3)
    assert m.dtype == jnp.float32
    # The reference sees exactly the values the input dtype holds.
    expected = ref.scc_map(np.asarray(p.astype(jnp.float32)), np.asarray(t.astype(jnp.float32)), window_size=3)
    np.testing.assert_allclose(np.asarray(m), expected, atol=MAP_TOL, rtol=0)
    s = jax_scc.spatial_correlation_coefficient(p, t, window_size=3)
    assert s.dtype == jnp.float32


def test_mixed_input_dtypes_promote():
    p, t = _images((1, 12, 12), seed=7)
    s_mixed = jax_scc.spatial_correlation_coefficient(p, jnp.asarray(t, jnp.bfloat16))
    s_ref = jax_scc.spatial_correlation_coefficient(p, np.asarray(jnp.asarray(t, jnp.bfloat16), np.float32))
    assert s_mixed.dtype == jnp.float32
    assert float(s_mixed) == float(s_ref)


def test_numpy_lists_and_jax_arrays_give_the_same_result():
    p, t = _images((1, 10, 10), seed=8)
    a = jax_scc.spatial_correlation_coefficient(p, t, window_size=3)
    b = jax_scc.spatial_correlation_coefficient(jnp.asarray(p), jnp.asarray(t), window_size=3)
    c = jax_scc.spatial_correlation_coefficient(p.tolist(), t.tolist(), window_size=3)
    assert float(a) == float(b) == float(c)


def test_hp_filter_accepts_any_2d_array_like():
    p, t = _images((1, 12, 12), seed=9)
    hp = [[0, -1, 0], [-1, 4, -1], [0, -1, 0]]
    results = {
        float(jax_scc.spatial_correlation_coefficient(p, t, hp_filter=f))
        for f in (hp, tuple(map(tuple, hp)), np.asarray(hp), np.asarray(hp, np.float32), jnp.asarray(hp))
    }
    assert len(results) == 1


def test_default_filter_is_the_laplacian():
    p, t = _images((1, 12, 12), seed=10)
    a = jax_scc.spatial_correlation_coefficient(p, t)
    b = jax_scc.spatial_correlation_coefficient(p, t, hp_filter=jax_scc.DEFAULT_HP_FILTER)
    c = jax_scc.spatial_correlation_coefficient(p, t, hp_filter=[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    assert float(a) == float(b) == float(c)


def test_filter_orientation_is_a_true_convolution():
    """An asymmetric filter and its 180-degree rotation give different maps; the
    reference (which flips the kernel) pins which one is right."""
    p, t = _images((1, 14, 14), seed=11)
    hp = np.array([[0, 0, 0], [0, 1, -1], [0, 0, 0]], np.float64)
    m = np.asarray(jax_scc.scc_map(p, t, hp_filter=hp, window_size=3))
    m_rot = np.asarray(jax_scc.scc_map(p, t, hp_filter=hp[::-1, ::-1], window_size=3))
    assert np.abs(m - m_rot).max() > 1e-2
    np.testing.assert_allclose(m, ref.scc_map(p, t, hp, 3), atol=MAP_TOL, rtol=0)
