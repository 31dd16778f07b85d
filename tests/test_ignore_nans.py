"""``ignore_nans=True``: NaN pixels as missing data, against the float64 reference.

The reference (tests/reference_nan.py) marks invalid map pixels with explicit
loops over the filter support (symmetric-reflect padded) and the window (zero
padded), and evaluates tests/reference.py on the inputs with NaN read as 0.
"""

import functools
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference as ref
import reference_nan as ref_nan

MAP_TOL = 1e-5  # per pixel, float32 vs. the float64 evaluation
MEAN_TOL = 1e-6

FILTERS = {
    "laplacian": None,
    "even2x2": ((1, -1), (-1, 1)),
    "even4x3": ((1, 0, -1), (2, 0, -2), (1, -1, -1), (0, 0, 1)),
    "asym1x3": ((1, -2, 1),),
    "sym5x5": (
        (0, 0, -1, 0, 0),
        (0, -1, -2, -1, 0),
        (-1, -2, 16, -2, -1),
        (0, -1, -2, -1, 0),
        (0, 0, -1, 0, 0),
    ),
    "single_tap": ((3.0,),),
}


# Most tests share one shape and configuration so that they share compilations.
SHAPE = (2, 2, 16, 16)


def _images(shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(size=shape)
    p = 0.6 * t + 0.4 * rng.uniform(size=shape)
    return p.astype(np.float32), t.astype(np.float32)


def _hp_ref(hp):
    return ref.LAPLACIAN if hp is None else np.asarray(hp, np.float64)


def _check(p, t, hp=None, window_size=8, data_format="NCHW", use_jit=False):
    """Map and per-sample scores agree with the reference; returns the scores."""
    kw = dict(hp_filter=hp, window_size=window_size, data_format=data_format, ignore_nans=True)
    fmap = functools.partial(jax_scc.scc_map, **kw)
    fscore = functools.partial(jax_scc.spatial_correlation_coefficient, reduction="none", **kw)
    if use_jit:
        fmap, fscore = jax.jit(fmap), jax.jit(fscore)
    m = np.asarray(fmap(p, t))
    expected = ref_nan.scc_map(p, t, _hp_ref(hp), window_size, data_format)
    assert m.shape == p.shape and m.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(m), np.isnan(expected))
    np.testing.assert_allclose(m, expected, atol=MAP_TOL, rtol=0, equal_nan=True)
    scores = np.asarray(fscore(p, t))
    expected_scores = ref_nan.scc_per_sample(p, t, _hp_ref(hp), window_size, data_format)
    np.testing.assert_allclose(scores, expected_scores, atol=MEAN_TOL, rtol=0, equal_nan=True)
    return scores


def test_reference_mask_is_where_nan_arithmetic_gives_nan():
    """The two ways of stating 'invalid' in the reference agree: explicit footprint
    loops and NaN propagation through the float64 definition (every tap, even 0)."""
    p, t = _images((1, 1, 20, 23), seed=3)
    p[0, 0, 0, 5] = np.nan
    p[0, 0, 9:11, 19:] = np.nan
    t[0, 0, 15, 0] = np.nan
    for hp in FILTERS.values():
        for w in (1, 2, 5, 8):
            with np.errstate(invalid="ignore"):
                propagated = np.isnan(ref.scc_map(p, t, _hp_ref(hp), w))
            mask = np.isnan(ref_nan.scc_map(p, t, _hp_ref(hp), w))
            np.testing.assert_array_equal(mask, propagated)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_block_inside(use_jit):
    p, t = _images(seed=1)
    p[0, :, 5:7, 6:12] = np.nan
    scores = _check(p, t, use_jit=use_jit)
    assert np.all(np.isfinite(scores))
    # Sample 1 has no NaN: same score as without ignore_nans.
    plain = jax_scc.spatial_correlation_coefficient(p[1:], t[1:], reduction="none")
    np.testing.assert_allclose(scores[1], np.asarray(plain)[0], atol=MEAN_TOL, rtol=0)


@pytest.mark.parametrize(
    "filter_name, window_size",
    [
        ("laplacian", 4),
        ("even2x2", 2),
        ("even4x3", 5),
        ("asym1x3", 1),
        ("sym5x5", 8),
        ("single_tap", 3),
    ],
)
def test_borders_filters_and_windows(filter_name, window_size):
    """NaN on every border and in corners: the reflect padding sees them again."""
    p, t = _images((2, 1, 17, 19), seed=2)
    p[0, 0, 0, 3] = np.nan  # top edge
    p[0, 0, 7:9, -1] = np.nan  # right edge
    t[0, 0, -1, -1] = np.nan  # bottom-right corner
    t[1, 0, 0, 0] = np.nan  # top-left corner
    t[1, 0, 12, 0:2] = np.nan  # left edge
    _check(p, t, FILTERS[filter_name], window_size)


def test_one_channel_only_and_target_only():
    p, t = _images(seed=4)
    t[0, 1, 5:7, 5:7] = np.nan  # target, channel 1 only
    p[1, 0, :, 14:] = np.nan  # preds, channel 0 only, a border strip
    _check(p, t)
    m = np.asarray(jax_scc.scc_map(p, t, ignore_nans=True))
    plain = np.asarray(jax_scc.scc_map(p, t))
    # Channels without NaN are untouched.
    np.testing.assert_array_equal(m[0, 0], plain[0, 0])
    np.testing.assert_array_equal(m[1, 1], plain[1, 1])


def test_whole_sample_nan_scores_nan_others_untouched():
    p, t = _images(seed=5)
    t[1] = np.nan
    scores = _check(p, t)
    assert np.isnan(scores[1]) and np.isfinite(scores[0])
    plain = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none"))
    np.testing.assert_allclose(scores[0], plain[0], atol=MEAN_TOL, rtol=0)
    assert np.isnan(jax_scc.spatial_correlation_coefficient(p, t, ignore_nans=True))
    assert np.all(np.isnan(np.asarray(jax_scc.scc_map(p, t, ignore_nans=True))[1]))


def test_no_valid_pixel_left_scores_nan():
    """A sample whose NaNs leave no map pixel with a clean footprint scores NaN."""
    p, t = _images(seed=6)
    p[0, :, 2::5, 2::5] = np.nan  # sparse, but every footprint sees one
    scores = _check(p, t)
    assert np.isnan(scores[0]) and np.isfinite(scores[1])


@pytest.mark.parametrize("rank", [3, 4])
def test_nhwc_and_rank3(rank):
    p, t = _images((2, 3, 16, 13), seed=7)
    p[0, 1, 3:6, 2:4] = np.nan
    t[1, 0, -2:, 10] = np.nan
    if rank == 3:
        p, t = p[:, 0], t[:, 0]
        _check(p, t)
    else:
        p, t = p.transpose(0, 2, 3, 1), t.transpose(0, 2, 3, 1)
        _check(p, t, data_format="NHWC", use_jit=True)


def test_without_nan_same_as_default():
    p, t = _images(seed=8)
    for fn in (jax_scc.scc_map, jax_scc.spatial_correlation_coefficient):
        # Equal up to the float32 summation order of the mean.
        np.testing.assert_allclose(
            np.asarray(fn(p, t, ignore_nans=True)), np.asarray(fn(p, t)), atol=2e-7, rtol=0
        )


def test_ignore_nans_false_still_propagates():
    p, t = _images(seed=9)
    p[0, 0, 8, 8] = np.nan
    scores = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none"))
    assert np.isnan(scores[0]) and np.isfinite(scores[1])
    m = np.asarray(jax_scc.scc_map(p, t, ignore_nans=False))
    assert np.isnan(m[0, 0, 8, 8]) and not np.isnan(m[0, 0, 0, 0])


def test_inf_is_not_missing():
    p, t = _images(seed=10)
    p[0, 0, 3, 3] = np.inf
    scores = np.asarray(
        jax_scc.spatial_correlation_coefficient(p, t, reduction="none", ignore_nans=True)
    )
    assert np.isnan(scores[0]) and np.isfinite(scores[1])


def test_gradients_finite_with_nan_holes():
    p, t = _images(seed=11)
    p[0, 0, 4:6, 4:6] = np.nan
    t[1, 1, 0:3, 13:] = np.nan
    t[0, 1, 10, 10] = np.nan

    def loss(a, b):
        return 1.0 - jax_scc.spatial_correlation_coefficient(a, b, ignore_nans=True)

    gp, gt = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(p), jnp.asarray(t))
    for g, x in ((gp, p), (gt, t)):
        g = np.asarray(g)
        assert np.all(np.isfinite(g))
        assert np.any(g != 0)
        # A NaN pixel is missing: it gets exactly zero gradient.
        assert np.all(g[np.isnan(x)] == 0)

    def map_loss(a):
        m = jax_scc.scc_map(a, t, ignore_nans=True)
        return jnp.sum(jnp.where(jnp.isnan(m), 0.0, m))

    assert np.all(np.isfinite(np.asarray(jax.grad(map_loss)(jnp.asarray(p)))))


def test_no_retrace_and_static_flag():
    p, t = _images(seed=12)
    p[0, 0, 2, 2] = np.nan
    traces = []

    @jax.jit
    def f(a, b):
        traces.append(1)
        return jax_scc.spatial_correlation_coefficient(a, b, ignore_nans=True)

    first = f(p, t)
    second = f(p + 0.5, t)
    assert len(traces) == 1 and np.isfinite(first) and np.isfinite(second)


@pytest.mark.parametrize("bad", [1, 0, None, "yes", np.bool_(True), jnp.asarray(True)])
def test_ignore_nans_must_be_python_bool(bad):
    p, t = _images((1, 1, 8, 8))
    for fn in (jax_scc.scc_map, jax_scc.spatial_correlation_coefficient):
        with pytest.raises(TypeError, match="`ignore_nans` must be a Python bool"):
            fn(p, t, ignore_nans=bad)


def test_traced_ignore_nans_rejected_under_jit():
    p, t = _images((1, 1, 8, 8))
    f = jax.jit(lambda a, b, flag: jax_scc.spatial_correlation_coefficient(a, b, ignore_nans=flag))
    with pytest.raises(TypeError, match="ignore_nans"):
        f(p, t, True)


def test_vmap_over_stacks():
    p, t = _images(seed=13)
    p[0, 1, 3:5, 3:5] = np.nan
    f = functools.partial(
        jax_scc.spatial_correlation_coefficient, reduction="none", ignore_nans=True
    )
    stacked = jax.vmap(f)(np.stack([p, t]), np.stack([t, t]))
    np.testing.assert_array_equal(np.asarray(stacked[0]), np.asarray(f(p, t)))
    np.testing.assert_allclose(np.asarray(stacked[1]), 1.0, atol=1e-6)


def test_float64_matches_reference_to_rounding():
    """With x64 on, float64 inputs stay float64 (run in a fresh process)."""
    here = Path(__file__).parent
    code = """
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np, jax_scc, reference_nan
rng = np.random.default_rng(0)
p, t = rng.uniform(size=(3, 2, 16, 16)), rng.uniform(size=(3, 2, 16, 16))
p[0, 0, 3:5, 0:2] = np.nan
t[1, 1, -1, 4] = np.nan
t[2] = np.nan
s = jax_scc.spatial_correlation_coefficient(p, t, reduction="none", ignore_nans=True)
assert s.dtype == np.float64, s.dtype
np.testing.assert_allclose(np.asarray(s), reference_nan.scc_per_sample(p, t), atol=1e-12, rtol=0)
m = jax_scc.scc_map(p, t, window_size=3, ignore_nans=True)
np.testing.assert_allclose(np.asarray(m), reference_nan.scc_map(p, t, window_size=3),
                           atol=1e-12, rtol=0, equal_nan=True)
"""
    path = [str(here), str(here.parent), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=here.parent)


@pytest.mark.parametrize("method", ["slices", "conv"])
def test_running_totals_and_class_ignore_nans(method):
    """scc_update and SpatialCorrelationCoefficient pass ignore_nans (and method) through."""
    p, t = _images(seed=7)
    p[0, 1, 3:6, 4:9] = np.nan
    t[1, 0, 12:, :2] = np.nan
    expected = ref_nan.scc_per_sample(p, t, ref.LAPLACIAN, 8, "NCHW")
    assert np.all(np.isfinite(expected))
    update = jax.jit(
        functools.partial(jax_scc.scc_update, ignore_nans=True, method=method, mask=None)
    )
    state = update(jax_scc.scc_init(), p, t)
    np.testing.assert_allclose(float(jax_scc.scc_compute(state)), expected.mean(), atol=MEAN_TOL)
    metric = jax_scc.SpatialCorrelationCoefficient(ignore_nans=True, method=method)
    np.testing.assert_allclose(float(metric(p, t)), expected.mean(), atol=MEAN_TOL)
    metric.update(p[:1], t[:1])
    np.testing.assert_allclose(
        float(metric.compute()), (expected.sum() + expected[0]) / 3, atol=MEAN_TOL
    )
    # Without the flag a NaN pixel poisons the totals.
    assert np.isnan(float(jax_scc.scc_compute(jax_scc.scc_update(jax_scc.scc_init(), p, t))))
    with pytest.raises(TypeError, match="ignore_nans"):
        jax_scc.SpatialCorrelationCoefficient(ignore_nans="yes")
