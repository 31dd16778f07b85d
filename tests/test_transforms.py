"""jax.jit (no retracing), jax.vmap over stacks, jax.grad (finite everywhere)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
from jax_scc._src import scc as scc_module


def _pair(shape=(2, 2, 16, 16), seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    t = jax.random.uniform(k1, shape)
    return t + 0.3 * jax.random.normal(k2, shape), t


def test_jit_matches_eager():
    p, t = _pair()
    for fn in (jax_scc.spatial_correlation_coefficient, jax_scc.scc_map):
        eager = fn(p, t, window_size=5)
        jitted = jax.jit(functools.partial(fn, window_size=5))(p, t)
        np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), atol=1e-7, rtol=0)


def test_static_argnames_work():
    p, t = _pair()
    f = jax.jit(
        jax_scc.spatial_correlation_coefficient,
        static_argnames=("hp_filter", "window_size", "reduction", "data_format"),
    )
    out = f(p, t, hp_filter=((0, -1, 0), (-1, 4, -1), (0, -1, 0)), window_size=3, reduction="none")
    expected = jax_scc.spatial_correlation_coefficient(
        p, t, hp_filter=((0, -1, 0), (-1, 4, -1), (0, -1, 0)), window_size=3, reduction="none"
    )
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-7)


def test_no_retrace_for_the_same_shapes():
    traces = []

    @jax.jit
    def step(p, t):
        traces.append(1)
        return jax_scc.spatial_correlation_coefficient(p, t)

    for seed in range(3):
        step(*_pair(seed=seed)).block_until_ready()
    assert len(traces) == 1
    step(*_pair(shape=(3, 2, 16, 16))).block_until_ready()
    assert len(traces) == 2  # a new shape traces once more

    # The library's own compiled function is cached per (shape, config), too.
    impl = scc_module._per_sample_impl
    before = impl._cache_size()
    for seed in range(3):
        jax_scc.spatial_correlation_coefficient(*_pair(shape=(1, 1, 24, 24), seed=seed), window_size=7)
        # Equal configuration given in another form hits the same cache entry.
        jax_scc.spatial_correlation_coefficient(
            *_pair(shape=(1, 1, 24, 24), seed=seed),
            window_size=np.int64(7),
            hp_filter=np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
        )
    assert impl._cache_size() == before + 1


def test_vmap_over_a_stack_equals_a_loop():
    stack_p, stack_t = _pair(shape=(4, 2, 3, 16, 16), seed=1)
    for fn, kwargs in [
        (jax_scc.spatial_correlation_coefficient, {}),
        (jax_scc.spatial_correlation_coefficient, {"reduction": "none"}),
        (jax_scc.scc_map, {}),
    ]:
        f = functools.partial(fn, window_size=4, **kwargs)
        vmapped = jax.vmap(f)(stack_p, stack_t)
        looped = jnp.stack([f(p, t) for p, t in zip(stack_p, stack_t)])
        np.testing.assert_allclose(np.asarray(vmapped), np.asarray(looped), atol=1e-6, rtol=0)
    # Two extra stack axes.
    vv = jax.vmap(jax.vmap(jax_scc.spatial_correlation_coefficient))(stack_p[None], stack_t[None])
    assert vv.shape == (1, 4)


def _grad(p, t, **kwargs):
    return jax.grad(lambda x: jax_scc.spatial_correlation_coefficient(x, t, **kwargs))(p)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_grad_is_finite_in_degenerate_cases(use_jit):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(2, 1, 16, 16)), jnp.float32)
    flat = jnp.full_like(x, 0.5)
    half_flat = x.at[:, :, :8].set(0.25)  # windows with exactly zero variance
    g = jax.jit(_grad, static_argnames=("window_size",)) if use_jit else _grad
    for p, t in [(x, x), (flat, x), (x, flat), (flat, flat), (half_flat, x), (x, half_flat), (half_flat, half_flat)]:
        for ws in (1, 2, 8):
            grad = np.asarray(g(p, t, window_size=ws))
            assert np.all(np.isfinite(grad)), (ws,)
    # Identical inputs are a maximum: the gradient vanishes there.
    assert np.abs(np.asarray(g(x, x, window_size=8))).max() < 1e-5
    # Flat predictions get a zero gradient (every window's variance is exactly 0).
    assert np.all(np.asarray(g(flat, x, window_size=8)) == 0)


def test_grad_matches_finite_differences():
    rng = np.random.default_rng(1)
    p = jnp.asarray(rng.uniform(size=(1, 1, 12, 12)), jnp.float32)
    t = jnp.asarray(rng.uniform(size=(1, 1, 12, 12)), jnp.float32)
    f = lambda x: jax_scc.spatial_correlation_coefficient(x, t, window_size=4)
    grad = np.asarray(jax.grad(f)(p))
    direction = rng.standard_normal(p.shape).astype(np.float32)
    direction /= np.linalg.norm(direction)
    eps = 1e-2
    fd = (float(f(p + eps * direction)) - float(f(p - eps * direction))) / (2 * eps)
    assert abs(fd - float(np.sum(grad * direction))) < 2e-3 * max(1.0, abs(fd))


def test_scc_as_a_loss_improves_under_gradient_descent():
    p, t = _pair(shape=(1, 1, 24, 24), seed=3)
    loss = jax.jit(lambda x: 1.0 - jax_scc.spatial_correlation_coefficient(x, t))
    grad = jax.jit(jax.grad(lambda x: 1.0 - jax_scc.spatial_correlation_coefficient(x, t)))
    start = float(loss(p))
    for _ in range(20):
        p = p - 2.0 * grad(p)
    assert float(loss(p)) < 0.5 * start
