"""The public functions: layouts, dtypes, reductions, options, transformations,
errors and the shape of the API."""

import functools
import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference as ref
from images import structured_pair
from jax_scc._src import execution

MAP_TOL = 1e-5
MEAN_TOL = 1e-6


@pytest.mark.parametrize(
    "shape, data_format",
    [((2, 3, 16, 21), "NCHW"), ((2, 16, 21, 3), "NHWC"), ((3, 9, 30), "NCHW"), ((3, 9, 30), "NHWC")],
)
def test_layouts_and_ranks(shape, data_format):
    p, t = structured_pair(shape, seed=2)
    m = jax_scc.scc_map(p, t, window_size=5, data_format=data_format)
    assert m.shape == shape
    expected = ref.scc_map(p, t, window_size=5, data_format=data_format)
    np.testing.assert_allclose(np.asarray(m), expected, atol=MAP_TOL, rtol=0)
    if len(shape) == 4:  # the scores' fold reads the layout's rows
        scores = jax_scc.spatial_correlation_coefficient(
            p, t, window_size=5, reduction="none", data_format=data_format
        )
        np.testing.assert_allclose(np.asarray(scores), ref.scores_of_map(expected, False), atol=MEAN_TOL, rtol=0)


def test_nhwc_is_nchw_transposed():
    p, t = structured_pair((2, 3, 20, 24), seed=3)
    nchw = jax_scc.scc_map(p, t)
    nhwc = jax_scc.scc_map(p.transpose(0, 2, 3, 1), t.transpose(0, 2, 3, 1), data_format="NHWC")
    np.testing.assert_array_equal(np.asarray(nchw), np.asarray(nhwc).transpose(0, 3, 1, 2))


@pytest.mark.parametrize("reduction", ["mean", "none", None])
def test_reductions(reduction):
    p, t = structured_pair((4, 2, 16, 16), seed=5)
    out = jax_scc.spatial_correlation_coefficient(p, t, reduction=reduction)
    per_sample = ref.scc_per_sample(p, t)
    if reduction == "mean":
        assert out.shape == () and abs(float(out) - per_sample.mean()) < MEAN_TOL
    else:
        assert out.shape == (4,)
        np.testing.assert_allclose(np.asarray(out), per_sample, atol=MEAN_TOL, rtol=0)


def test_input_dtypes_are_scored_in_float32():
    """Integers, booleans, float16 and bfloat16 are scored as the values they hold,
    in float32; mixed dtypes promote; lists and NumPy arrays work as JAX arrays."""
    rng = np.random.default_rng(6)
    ints = rng.integers(0, 200, size=(2, 2, 16, 16))
    for dtype in (jnp.float16, jnp.bfloat16, jnp.uint8, jnp.int32, jnp.bool_):
        p, t = jnp.asarray(ints[0] > 100 if dtype == jnp.bool_ else ints[0], dtype), jnp.asarray(ints[1], dtype)
        s = jax_scc.spatial_correlation_coefficient(p, t, window_size=3, reduction="none")
        assert s.dtype == jnp.float32
        expected = ref.scc_per_sample(np.asarray(p, np.float64), np.asarray(t, np.float64), window_size=3)
        np.testing.assert_allclose(np.asarray(s), expected, atol=MEAN_TOL, rtol=0)
    p, t = structured_pair((1, 12, 12), seed=7)
    mixed = jax_scc.spatial_correlation_coefficient(p, jnp.asarray(t, jnp.bfloat16))
    same = jax_scc.spatial_correlation_coefficient(p, np.asarray(jnp.asarray(t, jnp.bfloat16), np.float32))
    assert mixed.dtype == jnp.float32 and float(mixed) == float(same)
    assert float(jax_scc.spatial_correlation_coefficient(p.tolist(), t.tolist())) == float(
        jax_scc.spatial_correlation_coefficient(jnp.asarray(p), jnp.asarray(t))
    )


def test_empty_batch():
    """A mean over no samples is NaN; the map and the per-sample scores are empty."""
    x = np.zeros((0, 3, 16, 16), np.float32)
    assert jax_scc.scc_map(x, x).shape == (0, 3, 16, 16)
    assert jax_scc.spatial_correlation_coefficient(x, x, reduction="none").shape == (0,)
    assert np.isnan(float(jax_scc.spatial_correlation_coefficient(x, x)))
    assert np.isnan(float(jax.jit(jax_scc.spatial_correlation_coefficient)(x, x)))
    state = jax_scc.scc_update(jax_scc.scc_init(), x, x)
    assert int(state.count) == 0


def test_channels_last_input_under_nchw_says_so():
    x = np.zeros((4, 64, 64, 3), np.float32)
    with pytest.raises(ValueError, match=r"looks channels-last .*pass data_format='NHWC'"):
        jax_scc.spatial_correlation_coefficient(x, x)  # window 8 > 3 columns
    with pytest.warns(UserWarning, match=r"scored as 64 channels of 64x3 .*data_format='NHWC'"):
        jax_scc.spatial_correlation_coefficient(x, x, window_size=2)
    jax_scc.spatial_correlation_coefficient(x, x, data_format="NHWC")  # no warning


def test_non_finite_pixel_poisons_only_its_sample_and_nearby_windows():
    p, t = structured_pair((3, 2, 32, 32), seed=0)
    clean_scores = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none"))
    clean_map = np.asarray(jax_scc.scc_map(p, t))
    # The high-pass spreads the pixel by 1 (3x3 filter), the 8x8 window by 4 before / 3 after.
    reach = np.zeros((32, 32), bool)
    reach[10 - 1 - 3 : 10 + 1 + 4 + 1, 20 - 1 - 3 : 20 + 1 + 4 + 1] = True
    for bad, in_target in [(np.nan, False), (np.inf, True), (-np.inf, False)]:
        arr = (t if in_target else p).copy()
        arr[1, 0, 10, 20] = bad
        args = (p, arr) if in_target else (arr, t)
        scores = np.asarray(jax_scc.spatial_correlation_coefficient(*args, reduction="none"))
        assert np.isnan(scores[1])
        np.testing.assert_array_equal(scores[[0, 2]], clean_scores[[0, 2]])
        m = np.asarray(jax_scc.scc_map(*args))
        assert np.all(np.isnan(m[1, 0][reach])) and np.all(np.isfinite(m[1, 0][~reach]))
        np.testing.assert_allclose(m[1, 0][~reach], clean_map[1, 0][~reach], atol=1e-6, rtol=0)
        np.testing.assert_array_equal(m[1, 1], clean_map[1, 1])  # other channel untouched


def test_ignore_nans_leaves_missing_data_out():
    p, t = structured_pair((2, 2, 16, 16), seed=1)
    p[0, :, 5:7, 6:12] = np.nan
    scores = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none", ignore_nans=True))
    np.testing.assert_allclose(scores, ref.scc_per_sample(p, t, ignore_nans=True), atol=MEAN_TOL, rtol=0)
    # A sample without NaN scores as without the option; Inf is not missing data.
    plain = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none"))
    assert np.isnan(plain[0]) and abs(scores[1] - plain[1]) < MEAN_TOL
    p[1, 0, 3, 3] = np.inf
    assert np.isnan(float(jax_scc.spatial_correlation_coefficient(p, t, ignore_nans=True)))


class TransformsTest(chex.TestCase):
    """jax.jit (the user's own) and vmap over stacks of batches."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_eager_agree(self):
        p, t = structured_pair((2, 2, 16, 16), seed=0)
        for fn in (jax_scc.spatial_correlation_coefficient, jax_scc.scc_map):
            f = functools.partial(fn, window_size=5, ignore_nans=True)
            got = self.variant(f)(p, t)
            np.testing.assert_allclose(np.asarray(got), np.asarray(f(p, t)), atol=1e-7, rtol=0)

    def test_vmap_over_stacks_equals_a_loop(self):
        stack_p, stack_t = structured_pair((3, 2, 2, 16, 16), seed=1)
        for fn, kwargs in [
            (jax_scc.spatial_correlation_coefficient, {"reduction": "none"}),
            (jax_scc.scc_map, {}),
        ]:
            f = functools.partial(fn, window_size=4, **kwargs)
            vmapped = jax.vmap(f)(stack_p, stack_t)
            looped = jnp.stack([f(p, t) for p, t in zip(stack_p, stack_t)])
            np.testing.assert_allclose(np.asarray(vmapped), np.asarray(looped), atol=1e-6, rtol=0)


def test_each_configuration_compiles_once(monkeypatch):
    """A jitted step traces once per input shape, and the library compiles one
    program per (shape, configuration): equal configurations given in other forms
    (a NumPy filter, a NumPy integer) hit the same compiled program."""
    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(jax_scc.spatial_correlation_coefficient, n=1))
    for seed in range(3):
        step(*structured_pair((2, 1, 16, 16), seed=seed))
    # Inside the library: `strategy` runs once each time its jitted program traces.
    monkeypatch.setattr(execution, "strategy", chex.assert_max_traces(execution.strategy, n=1))
    p, t = structured_pair((1, 1, 23, 23), seed=4)
    for window_size, hp_filter in [(7, None), (np.int64(7), np.asarray(jax_scc.DEFAULT_HP_FILTER)), (7, [[-1] * 3, [-1, 8, -1], [-1] * 3])]:
        jax_scc.spatial_correlation_coefficient(p, t, hp_filter, window_size)


# --- errors: named argument, what was expected, what was given; at trace time ------

X = np.zeros((2, 3, 16, 16), np.float32)

ERRORS = [
    # (kwargs, args, exception, message fragments)
    ({}, (X, X[:, :2]), ValueError, ["`preds` and `target`", "same shape", "(2, 3, 16, 16)", "(2, 2, 16, 16)"]),
    ({}, (X[0, 0], X[0, 0]), ValueError, ["3-D", "4-D", "2-D shape (16, 16)"]),
    ({"data_format": "NHWC"}, (X[None], X[None]), ValueError, ["(N,H,W,C)", "5-D shape"]),
    ({}, (X[:, :0], X[:, :0]), ValueError, ["at least one channel", "(2, 0, 16, 16)"]),
    ({"window_size": 0}, (X, X), ValueError, ["`window_size`", "positive integer", "got 0"]),
    ({"window_size": 17}, (X, X), ValueError, ["`window_size`", "at most the image size", "window_size=17", "16x16"]),
    ({"window_size": 2.5}, (X, X), ValueError, ["`window_size`", "positive integer", "2.5", "float"]),
    ({"window_size": "8"}, (X, X), ValueError, ["`window_size`", "positive integer", "'8'", "str"]),
    ({"window_size": True}, (X, X), ValueError, ["`window_size`", "positive integer", "True"]),
    ({"data_format": "nchw"}, (X, X), ValueError, ["`data_format`", "'NCHW' or 'NHWC'", "'nchw'"]),
    ({"method": "fast"}, (X, X), ValueError, ["`method`", "'auto', 'slices', 'conv' or 'direct'", "'fast'"]),
    ({"reduction": "sum"}, (X, X), ValueError, ["`reduction`", "'mean', 'none' or None", "'sum'"]),
    ({"ignore_nans": 1}, (X, X), TypeError, ["`ignore_nans`", "Python bool", "int"]),
    ({"ignore_flat": "yes"}, (X, X), TypeError, ["`ignore_flat`", "Python bool", "'yes'"]),
    ({"hp_filter": [1, -1]}, (X, X), ValueError, ["`hp_filter`", "2-D", "1-D"]),
    ({"hp_filter": np.ones((0, 3))}, (X, X), ValueError, ["`hp_filter`", "empty", "(0, 3)"]),
    ({"hp_filter": [[1, np.nan], [0, -1]]}, (X, X), ValueError, ["`hp_filter`", "finite"]),
    ({"hp_filter": [[1j, 0], [0, -1]]}, (X, X), TypeError, ["`hp_filter`", "complex"]),
    ({"hp_filter": [["a", "b"]]}, (X, X), TypeError, ["`hp_filter`", "numbers"]),
    ({"hp_filter": np.ones((41, 3))}, (X, X), ValueError, ["`hp_filter`", "(41, 3)", "too large", "16x16"]),
    ({}, (X.astype(np.complex64), X), TypeError, ["`preds`", "real", "complex64"]),
    ({}, (X, "image"), TypeError, ["`target`", "array", "str"]),
    ({}, (None, X), TypeError, ["`preds`", "array", "NoneType"]),
]


@pytest.mark.parametrize("kwargs, args, exc, fragments", ERRORS)
def test_bad_input_raises_a_clear_error_also_under_jit(kwargs, args, exc, fragments):
    fn = jax_scc.spatial_correlation_coefficient
    calls = [lambda: fn(*args, **kwargs)]
    if not any(isinstance(a, (str, type(None))) for a in args):  # jit takes arrays only
        calls.append(lambda: jax.jit(functools.partial(fn, **kwargs))(*args))
    for call in calls:
        with pytest.raises(exc) as info:
            call()
        for fragment in fragments:
            assert fragment in str(info.value), (fragment, str(info.value))


def test_traced_configuration_is_rejected_with_advice():
    with pytest.raises(TypeError, match=r"`hp_filter` must be a concrete .* traced value"):
        jax.jit(lambda p, t, f: jax_scc.scc_map(p, t, hp_filter=f))(X, X, jnp.ones((3, 3)))
    with pytest.raises(ValueError, match=r"`window_size` must be a concrete .* traced value"):
        jax.jit(lambda p, t, w: jax_scc.scc_map(p, t, window_size=w))(X, X, 3)
    with pytest.raises(TypeError, match="`ignore_nans` must be a Python bool"):
        jax.jit(lambda p, t, flag: jax_scc.scc_map(p, t, ignore_nans=flag))(X, X, True)


def test_errors_fire_at_trace_time_without_running():
    """Lowering (tracing only, no execution) already raises."""
    f = jax.jit(lambda p, t: jax_scc.spatial_correlation_coefficient(p, t, window_size=99))
    spec = jax.ShapeDtypeStruct(X.shape, jnp.float32)
    with pytest.raises(ValueError, match="window_size"):
        f.lower(spec, spec)


# --- the shape of the API ----------------------------------------------------------


def _entry_points():
    points = {
        "scc_map": jax_scc.scc_map,
        "spatial_correlation_coefficient": jax_scc.spatial_correlation_coefficient,
        "scc_update": jax_scc.scc_update,
        "SpatialCorrelationCoefficient": jax_scc.SpatialCorrelationCoefficient.__init__,
    }
    try:
        from jax_scc.clu import SCC

        points["clu.SCC.with_config"] = SCC.with_config.__func__
    except ImportError:
        pass
    try:
        from jax_scc.nnx import SCC as NnxSCC

        points["nnx.SCC"] = NnxSCC.__init__
    except ImportError:
        pass
    return points


def test_every_entry_point_takes_the_same_options_keyword_only_but_two():
    """torchmetrics' positional ``hp_filter, window_size`` (and the function's
    ``reduction``) stay positional for migration; every other option is
    keyword-only, and all entry points offer the same configuration."""
    config_names = {"data_format", "ignore_nans", "ignore_flat", "method"}
    for name, fn in _entry_points().items():
        params = inspect.signature(fn).parameters
        positional = [p for p, v in params.items() if v.kind == v.POSITIONAL_OR_KEYWORD]
        keyword_only = {p for p, v in params.items() if v.kind == v.KEYWORD_ONLY}
        assert positional[-2:] == ["hp_filter", "window_size"] or positional[-3:] == [
            "hp_filter",
            "window_size",
            "reduction",
        ], (name, positional)
        assert config_names <= keyword_only, (name, keyword_only)
        assert set(positional) <= {"self", "cls", "state", "preds", "target", "hp_filter", "window_size", "reduction"}
