"""SCC as a loss: the derivative rule against autodiff of the float64 definition,
forward mode, finiteness on degenerate inputs, missing data, and its memory.
(Finite differences and second derivatives in float64: tests/_x64_checks.py;
training with it: examples/training_loss.py in tests/test_examples.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference as ref
from images import blurred, noisy, photo, quantize, structured_pair

GRAD_TOL = 1e-5  # of max|grad|, against autodiff of the float64 definition


def _photograph_pairs():
    """Blurred, noisy and quantized photographs (flat regions included) against
    the originals, and a quantized one against its quantized noisy version."""
    pairs = []
    for name in ("camera", "astronaut", "brick", "text"):
        img = photo(name, 64)
        pairs += [(blurred(img), img), (noisy(img), img), (quantize(img), img), (quantize(img), quantize(noisy(img)))]
    p = np.stack([a for a, _ in pairs])[:, None].astype(np.float32)
    t = np.stack([b for _, b in pairs])[:, None].astype(np.float32)
    return p, t


def _float64_gradients(p, t, window_size, weights, hp_filter=ref.LAPLACIAN):
    """Gradients of sum(weights * scores) of the float64 definition (autodiff)."""
    with jax.enable_x64(True):
        f = lambda a, b: jnp.sum(jnp.asarray(weights, jnp.float64) * ref.scc_scores_jax(a, b, hp_filter, window_size))
        grads = jax.jit(jax.grad(f, argnums=(0, 1)))(jnp.asarray(p, jnp.float64), jnp.asarray(t, jnp.float64))
        return [np.asarray(g) for g in grads]


@pytest.mark.parametrize("window_size", [2, 3, 8, 32])
def test_gradients_match_float64_autodiff_on_photographs(window_size):
    """Both inputs, a weighted loss over a batch of photographs: every pixel's
    gradient within 1e-5 of the largest, and exactly 0 where the prediction's
    windows are all flat. (w = 32: the quantized brick pairs, where the
    windows' values are nearly equal the most, and two blurred photographs,
    for the reference's memory's sake.)"""
    p, t = _photograph_pairs()
    if window_size > 8:
        p, t = p[[0, 8, 10, 11]], t[[0, 8, 10, 11]]
    weights = np.linspace(0.5, 1.5, len(p)).astype(np.float32)
    f = lambda a, b: jnp.sum(weights * jax_scc.spatial_correlation_coefficient(a, b, None, window_size, "none"))
    ours = jax.jit(jax.grad(f, argnums=(0, 1)))(p, t)
    for g, expected in zip(ours, _float64_gradients(p, t, window_size, weights)):
        scale = np.abs(expected).max()
        assert np.abs(np.asarray(g, np.float64) - expected).max() <= GRAD_TOL * scale
    # Forward mode (jax.jvp) uses the same rule: the tangent along a direction
    # is the gradient's inner product with it.
    v = np.random.default_rng(1).standard_normal(p.shape).astype(np.float32)
    _, tangent = jax.jvp(lambda a: f(a, t), (p,), (v,))
    assert float(tangent) == pytest.approx(float(np.vdot(np.asarray(ours[0], np.float64), v)), rel=1e-4)
    flat = np.full_like(p[:2], 0.5)
    g = jax.grad(lambda a: jax_scc.spatial_correlation_coefficient(a, t[:2], None, window_size))(flat)
    assert np.all(np.asarray(g) == 0)


@pytest.mark.parametrize(
    "hp_filter",
    [((1.0, -1.0),), ((1.0,), (-1.0,)), ((0.5, -1.0, 0.25), (1.0, 0.0, -2.0), (0.0, 1.5, -0.5), (-1.0, 0.5, 0.75))],
    ids=["1x2", "2x1", "4x3"],
)
def test_gradients_through_other_filters_match_float64_autodiff(hp_filter):
    """Filters whose reflection is uneven, wider than tall and taller than
    wide (the high-pass's transpose reads a border of a different width on
    each axis), at an even window (w = 4: its padding uneven too), on CPU's
    walk: within 1e-5 of the largest gradient."""
    p, t = _photograph_pairs()
    p, t = p[[2, 6, 9]], t[[2, 6, 9]]
    weights = np.array([1.0, 0.5, 2.0], np.float32)
    f = lambda a, b: jnp.sum(weights * jax_scc.spatial_correlation_coefficient(a, b, hp_filter, 4, "none"))
    ours = jax.jit(jax.grad(f, argnums=(0, 1)))(p, t)
    for g, expected in zip(ours, _float64_gradients(p, t, 4, weights, np.asarray(hp_filter))):
        assert np.abs(np.asarray(g, np.float64) - expected).max() <= GRAD_TOL * np.abs(expected).max()


def test_reflection_transpose_is_autodiffs():
    """reflect_pad_transpose (the reflection's derivative, formed by position)
    is the transpose JAX derives, for every split of the padding."""
    from jax_scc._src import highpass

    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 6)), jnp.float32)
    for before, after in [(1, 1), (0, 2), (2, 0), (2, 3)]:
        for axis in (1, 2):
            padded = highpass.reflect_pad(x, before, after, axis)
            g = jnp.asarray(np.random.default_rng(1).normal(size=padded.shape), jnp.float32)
            (expected,) = jax.linear_transpose(lambda v: highpass.reflect_pad(v, before, after, axis), x)(g)
            got = highpass.reflect_pad_transpose(g, before, after, axis)
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, err_msg=f"{before, after, axis}")


def test_accelerator_rule_matches_float64_autodiff_on_photographs():
    """The rule the GPU/TPU formulation uses (written from the definition,
    centred on each window's centre pixel; run here on CPU): every pixel's
    gradient within 1e-5 of the largest on the photographs, at w = 8."""
    from jax_scc._src.config import make_config
    from jax_scc._src.execution import whole

    p, t = _photograph_pairs()
    weights = np.linspace(0.5, 1.5, len(p)).astype(np.float32)
    config = make_config(None, 8)
    _, grads, counted = jax.jit(lambda a, b: whole.scores(a, b, config, "direct", gradients=(True, True)))(p, t)
    per_sample = (weights / np.asarray(counted))[:, None, None, None]
    for g, expected in zip(grads, _float64_gradients(p, t, 8, weights)):
        scale = np.abs(expected).max()
        assert np.abs(np.asarray(g, np.float64) * per_sample - expected).max() <= GRAD_TOL * scale


def test_gradient_of_the_map_matches_float64_autodiff():
    """The map's rule (a tangent per map pixel, transposed by JAX): a weighted
    sum of the map, both inputs; and forward mode along a direction."""
    p, t = structured_pair((2, 1, 20, 24), seed=2)
    weights = np.random.default_rng(0).standard_normal(p.shape).astype(np.float32)
    f = lambda a, b: jnp.sum(weights * jax_scc.scc_map(a, b, window_size=5))
    ours = jax.jit(jax.grad(f, argnums=(0, 1)))(p, t)
    with jax.enable_x64(True):
        f64 = lambda a, b: jnp.sum(jnp.asarray(weights, jnp.float64) * ref.scc_map_jax(a, b, window_size=5))
        expected = jax.jit(jax.grad(f64, argnums=(0, 1)))(jnp.asarray(p, jnp.float64), jnp.asarray(t, jnp.float64))
    for g, e in zip(ours, expected):
        e = np.asarray(e)
        assert np.abs(np.asarray(g, np.float64) - e).max() <= GRAD_TOL * np.abs(e).max()
    v = np.random.default_rng(1).standard_normal(p.shape).astype(np.float32)
    _, tangent = jax.jvp(lambda a: f(a, t), (p,), (v,))
    assert float(tangent) == pytest.approx(float(np.vdot(np.asarray(ours[0], np.float64), v)), rel=1e-4)


def test_gradient_is_finite_in_degenerate_cases():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(2, 1, 16, 16)), jnp.float32)
    flat = jnp.full_like(x, 0.5)
    half_flat = x.at[:, :, :8].set(0.25)  # windows with exactly zero variance
    grad = jax.jit(
        jax.grad(lambda p, t, w: jax_scc.spatial_correlation_coefficient(p, t, window_size=w), argnums=(0, 1)),
        static_argnames="w",
    )
    for p, t in [(x, x), (flat, x), (x, flat), (flat, flat), (half_flat, x), (x, half_flat)]:
        for w in (1, 8):
            assert all(np.all(np.isfinite(np.asarray(g))) for g in grad(p, t, w)), w
    assert np.abs(np.asarray(grad(x, x, 8)[0])).max() < 1e-5  # identical inputs: a maximum


def test_gradients_with_missing_data_and_flat_targets():
    """ignore_nans: finite, exactly 0 at the holes, and the finite-difference
    slope along the other pixels; ignore_flat: the same rule over fewer pixels."""
    p, t = structured_pair((2, 2, 16, 16), seed=11)
    p[0, 0, 4:6, 4:6] = np.nan
    t[1, 1, 0:3, 13:] = np.nan
    t[0, 1, :8] = 0.25  # a flat region of the target
    for options in ({"ignore_nans": True, "ignore_flat": True},):
        loss = lambda a, b: 1.0 - jax_scc.spatial_correlation_coefficient(a, b, **options)
        gp, gt = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(p), jnp.asarray(t))
        for g, x in ((gp, p), (gt, t)):
            g = np.asarray(g)
            assert np.all(np.isfinite(g)) and np.any(g != 0)
            assert np.all(g[np.isnan(x)] == 0)
        v = np.where(np.isnan(p), 0, np.random.default_rng(2).standard_normal(p.shape)).astype(np.float32)
        eps = 1e-2
        fd = (float(loss(p + eps * v, t)) - float(loss(p - eps * v, t))) / (2 * eps)
        assert abs(fd - float(np.nansum(np.asarray(gp) * v))) < 2e-3 * max(1.0, abs(fd))


def test_per_example_gradients_under_vmap():
    stack_p, stack_t = structured_pair((3, 2, 1, 16, 16), seed=5)
    grad = jax.grad(lambda a, b: jax_scc.spatial_correlation_coefficient(a, b, window_size=4))
    vmapped = jax.vmap(grad)(stack_p, stack_t)
    looped = np.stack([np.asarray(grad(a, b)) for a, b in zip(stack_p, stack_t)])
    np.testing.assert_allclose(np.asarray(vmapped), looped, atol=1e-6, rtol=1e-6)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the chunk walk runs on CPU")
def test_gradient_memory_stays_within_two_inputs():
    """jit(grad) of the loss in both inputs keeps one gradient per input and a
    chunk's working set, not the definition's intermediate results: XLA's
    temporaries stay below three times one input's bytes (autodiff through the
    forward needed 36x)."""
    x = jax.ShapeDtypeStruct((4, 1, 1024, 1024), jnp.float32)
    loss = lambda a, b: 1.0 - jax_scc.spatial_correlation_coefficient(a, b)
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, x).compile()
    assert compiled.memory_analysis().temp_size_in_bytes < 3 * x.size * 4
