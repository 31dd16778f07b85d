"""Bad input: ValueError/TypeError naming the argument, the expectation and what was
given, raised at trace time (so also under jax.jit)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc

X = np.zeros((2, 3, 16, 16), np.float32)


def _both(fn, *args, **kwargs):
    """Yields the eager call and the same call traced by the user's jit."""
    yield lambda: fn(*args, **kwargs)
    yield lambda: jax.jit(functools.partial(fn, **kwargs))(*args)


CASES = [
    # (kwargs, args, exception, message fragments)
    ({}, (X, X[:, :2]), ValueError, ["`preds` and `target`", "same shape", "(2, 3, 16, 16)", "(2, 2, 16, 16)"]),
    ({}, (X[0, 0], X[0, 0]), ValueError, ["3-D", "4-D", "2-D shape (16, 16)"]),
    ({}, (X[None], X[None]), ValueError, ["3-D", "4-D", "5-D shape"]),
    ({"data_format": "NHWC"}, (X[0, 0], X[0, 0]), ValueError, ["(N,H,W,C)", "2-D"]),
    ({"window_size": 0}, (X, X), ValueError, ["`window_size`", "positive integer", "got 0"]),
    ({"window_size": -3}, (X, X), ValueError, ["`window_size`", "positive integer", "got -3"]),
    ({"window_size": 17}, (X, X), ValueError, ["`window_size`", "at most the image size", "window_size=17", "16x16"]),
    ({"window_size": 2.5}, (X, X), ValueError, ["`window_size`", "positive integer", "2.5", "float"]),
    ({"window_size": 8.0}, (X, X), ValueError, ["`window_size`", "positive integer", "8.0"]),
    ({"window_size": "8"}, (X, X), ValueError, ["`window_size`", "positive integer", "'8'", "str"]),
    ({"window_size": True}, (X, X), ValueError, ["`window_size`", "positive integer", "True"]),
    ({"data_format": "NWHC"}, (X, X), ValueError, ["`data_format`", "'NCHW' or 'NHWC'", "'NWHC'"]),
    ({"data_format": "nchw"}, (X, X), ValueError, ["`data_format`", "'nchw'"]),
    ({"hp_filter": [1, -1]}, (X, X), ValueError, ["`hp_filter`", "2-D", "1-D"]),
    ({"hp_filter": np.ones((2, 2, 2))}, (X, X), ValueError, ["`hp_filter`", "2-D", "3-D"]),
    ({"hp_filter": np.ones((0, 3))}, (X, X), ValueError, ["`hp_filter`", "empty", "(0, 3)"]),
    ({"hp_filter": [[1, np.nan], [0, -1]]}, (X, X), ValueError, ["`hp_filter`", "finite"]),
    ({"hp_filter": [[1j, 0], [0, -1]]}, (X, X), TypeError, ["`hp_filter`", "complex"]),
    ({"hp_filter": [["a", "b"]]}, (X, X), TypeError, ["`hp_filter`", "numbers"]),
    ({"hp_filter": np.ones((41, 3))}, (X, X), ValueError, ["`hp_filter`", "(41, 3)", "too large", "16x16"]),
    ({}, (X.astype(np.complex64), X), TypeError, ["`preds`", "real", "complex64"]),
    ({}, (X, "image"), TypeError, ["`target`", "array", "str"]),
    ({}, (None, X), TypeError, ["`preds`", "array", "NoneType"]),
]


@pytest.mark.parametrize("kwargs,args,exc,fragments", CASES)
@pytest.mark.parametrize("fn", [jax_scc.spatial_correlation_coefficient, jax_scc.scc_map], ids=["scc", "scc_map"])
def test_bad_input_raises_with_a_clear_message(fn, kwargs, args, exc, fragments):
    calls = list(_both(fn, *args, **kwargs))
    # Non-array arguments cannot be passed through jit; test them eagerly only.
    if any(isinstance(a, (str, type(None))) for a in args):
        calls = calls[:1]
    for call in calls:
        with pytest.raises(exc) as info:
            call()
        for fragment in fragments:
            assert fragment in str(info.value), (fragment, str(info.value))


@pytest.mark.parametrize("reduction", ["sum", "mean ", "MEAN", 0])
def test_unknown_reduction(reduction):
    for call in _both(jax_scc.spatial_correlation_coefficient, X, X, reduction=reduction):
        with pytest.raises(ValueError, match=r"`reduction` must be one of 'mean', 'none' or None, got"):
            call()


def test_traced_configuration_is_rejected_with_advice():
    with pytest.raises(TypeError, match=r"`hp_filter` must be a concrete .* traced value"):
        jax.jit(lambda p, t, f: jax_scc.spatial_correlation_coefficient(p, t, hp_filter=f))(
            X, X, jnp.ones((3, 3))
        )
    with pytest.raises(ValueError, match=r"`window_size` must be a concrete .* traced value"):
        jax.jit(lambda p, t, w: jax_scc.spatial_correlation_coefficient(p, t, window_size=w))(X, X, 3)


def test_errors_fire_at_trace_time_without_running():
    """Lowering (tracing only, no execution) already raises."""
    f = jax.jit(lambda p, t: jax_scc.spatial_correlation_coefficient(p, t, window_size=99))
    with pytest.raises(ValueError, match="window_size"):
        f.lower(jax.ShapeDtypeStruct(X.shape, jnp.float32), jax.ShapeDtypeStruct(X.shape, jnp.float32))
