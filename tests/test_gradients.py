"""SCC as a loss: gradients are right (finite differences) and finite everywhere."""

import jax
import jax.numpy as jnp
import numpy as np

import jax_scc
from images import structured_pair


def test_gradient_is_finite_in_degenerate_cases():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(2, 1, 16, 16)), jnp.float32)
    flat = jnp.full_like(x, 0.5)
    half_flat = x.at[:, :, :8].set(0.25)  # windows with exactly zero variance
    grad = jax.jit(
        jax.grad(lambda p, t, w: jax_scc.spatial_correlation_coefficient(p, t, window_size=w)),
        static_argnames="w",
    )
    for p, t in [(x, x), (flat, x), (x, flat), (flat, flat), (half_flat, x), (x, half_flat)]:
        for w in (1, 2, 8):
            assert np.all(np.isfinite(np.asarray(grad(p, t, w)))), w
    assert np.abs(np.asarray(grad(x, x, 8))).max() < 1e-5  # identical inputs: a maximum
    assert np.all(np.asarray(grad(flat, x, 8)) == 0)  # every window of the prediction is flat


def test_gradient_matches_finite_differences():
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


def test_gradients_with_nan_holes_are_finite_and_zero_at_the_holes():
    p, t = structured_pair((2, 2, 16, 16), seed=11)
    p[0, 0, 4:6, 4:6] = np.nan
    t[1, 1, 0:3, 13:] = np.nan

    def loss(a, b):
        return 1.0 - jax_scc.spatial_correlation_coefficient(a, b, ignore_nans=True)

    gp, gt = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(p), jnp.asarray(t))
    for g, x in ((gp, p), (gt, t)):
        g = np.asarray(g)
        assert np.all(np.isfinite(g)) and np.any(g != 0)
        assert np.all(g[np.isnan(x)] == 0)


def test_scc_as_a_loss_improves_under_gradient_descent():
    p, t = structured_pair((1, 1, 24, 24), seed=3, noise=0.3)
    loss = jax.jit(lambda x: 1.0 - jax_scc.spatial_correlation_coefficient(x, t))
    grad = jax.jit(jax.grad(lambda x: 1.0 - jax_scc.spatial_correlation_coefficient(x, t)))
    start = float(loss(p))
    for _ in range(20):
        p = p - 2.0 * grad(p)
    assert float(loss(p)) < 0.5 * start
