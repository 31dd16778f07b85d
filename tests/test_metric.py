"""Scoring batches into running totals: scc_update (pure) and the stateful class."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference
from images import structured_pair
from jax_scc import SCCState, SpatialCorrelationCoefficient, scc_compute, scc_init, scc_update
from jax_scc._src import metric as metric_lib


def _batches(sizes=(3, 2, 2), shape=(2, 16, 16), seed=0):
    return [structured_pair((n,) + shape, seed=seed + i) for i, n in enumerate(sizes)]


def _ref_scores(batches, **kw):
    return np.concatenate([reference.scc_per_sample(p, t, **kw) for p, t in batches])


def test_scc_update_in_a_jitted_scan_with_masks():
    """An evaluation loop: fixed-shape batches, the last one padded and masked,
    inside a jitted lax.scan; the state traces once."""
    p, t = structured_pair((5, 3, 1, 16, 16), seed=7)  # 5 batches of 3
    masks = np.ones((5, 3), bool)
    masks[-1, 1:] = False
    p[-1, 1:] = np.nan  # the padding may hold anything

    @jax.jit
    def run(p, t, masks):
        def body(s, xs):
            return scc_update(s, xs[0], xs[1], None, 4, mask=xs[2]), None

        return jax.lax.scan(body, scc_init(), (p, t, masks))[0]

    s = run(p, t, masks)
    keep = masks.ravel()
    expected = reference.scc_per_sample(p.reshape(15, 1, 16, 16)[keep], t.reshape(15, 1, 16, 16)[keep], window_size=4)
    assert int(s.count) == 13
    np.testing.assert_allclose(float(scc_compute(s)), expected.mean(), atol=1e-6, rtol=0)
    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(scc_update, n=1), static_argnames="window_size")
    s = scc_init()
    for i in range(3):
        s = step(s, p[i], t[i], window_size=4, mask=jnp.asarray(masks[i]))
    assert int(s.count) == 9


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_class_accumulates_batches(data_format):
    batches = _batches()
    if data_format == "NHWC":
        batches = [(p.transpose(0, 2, 3, 1), t.transpose(0, 2, 3, 1)) for p, t in batches]
    m = SpatialCorrelationCoefficient(window_size=4, data_format=data_format)
    for p, t in batches:
        m.update(p, t)
    assert int(m.state.count) == 7
    expected = _ref_scores(batches, window_size=4, data_format=data_format).mean()
    np.testing.assert_allclose(float(m.compute()), expected, atol=1e-6, rtol=0)


def test_forward_returns_the_batch_score_and_accumulates_like_update():
    batches = _batches()
    m, u = SpatialCorrelationCoefficient(window_size=4), SpatialCorrelationCoefficient(window_size=4)
    for p, t in batches:
        expected = reference.scc_per_sample(p, t, window_size=4).mean()
        np.testing.assert_allclose(float(m(p, t)), expected, atol=1e-6, rtol=0)
        u.update(p, t)
    for a, b in zip(m.state, u.state):
        assert np.asarray(a) == np.asarray(b)
    # Masks in both; a batch with every sample masked scores NaN and adds nothing.
    (p, t), = _batches((4,))
    mask = jnp.array([True, False, True, False])
    expected = reference.scc_per_sample(p, t, window_size=4)
    np.testing.assert_allclose(float(m(p, t, mask=mask)), expected[[0, 2]].mean(), atol=1e-6, rtol=0)
    before = m.state
    assert np.isnan(float(m(p, t, mask=jnp.zeros(4, bool))))
    m.update(p, t, mask=~mask)
    assert int(m.state.count) == int(before.count) + 2


def test_compute_before_update_warns_and_reset_forgets():
    m = SpatialCorrelationCoefficient(window_size=4)
    with pytest.warns(UserWarning, match=r"compute\(\) was called before any update\(\)"):
        assert np.isnan(float(m.compute()))
    (p, t), = _batches((2,))
    m.update(p, t)
    m.reset()
    assert int(m.state.count) == 0 and isinstance(m.state, SCCState)
    with pytest.warns(UserWarning, match="before any update"):
        m.compute()
    m.update(p, -p)
    np.testing.assert_allclose(float(m.compute()), -1.0, atol=1e-6)


def test_one_compiled_step_per_input_shape(monkeypatch):
    """update and __call__ each compile once per batch shape, shared by every
    instance with the same configuration."""
    chex.clear_trace_counter()
    # `scores_of` runs once each time one of the class's jitted steps traces.
    monkeypatch.setattr(metric_lib, "scores_of", chex.assert_max_traces(metric_lib.scores_of, n=4))
    batches = _batches((3, 3, 2, 2), shape=(1, 13, 11), seed=5)  # a shape no other test uses
    m = SpatialCorrelationCoefficient(window_size=3)
    for p, t in batches:
        m.update(p, t)
        m(p, t)
    SpatialCorrelationCoefficient(window_size=3).update(*batches[0])


def test_no_host_transfer_until_compute():
    batches = [tuple(jnp.asarray(x) for x in b) for b in _batches((2, 2))]
    mask = jnp.array([True, False])
    m = SpatialCorrelationCoefficient(window_size=4)
    m.update(*batches[0])  # compile outside the guard
    m(*batches[0], mask=mask)
    m.reset()
    with jax.transfer_guard("disallow"):
        m.update(*batches[0])
        m(*batches[1], mask=mask)
        result = m.compute()
    assert isinstance(result, jax.Array) and int(m.state.count) == 3


def test_merge_state_accepts_metrics_that_score_alike():
    b1, b2 = _batches((2, 3))
    a = SpatialCorrelationCoefficient(window_size=4)
    b = SpatialCorrelationCoefficient(window_size=4, method="conv")  # same numbers
    a.update(*b1)
    b.update(*b2)
    a.merge_state(b)
    np.testing.assert_allclose(float(a.compute()), _ref_scores([b1, b2], window_size=4).mean(), atol=1e-6, rtol=0)
    c = SpatialCorrelationCoefficient(window_size=4)
    c.merge_state(scc_update(scc_init(), *b1, window_size=4))
    assert int(c.state.count) == 2
    for other in (SpatialCorrelationCoefficient(window_size=5), SpatialCorrelationCoefficient(window_size=4, ignore_nans=True)):
        with pytest.raises(ValueError, match="score differently"):
            a.merge_state(other)
    with pytest.raises(TypeError, match="`other` must be a SpatialCorrelationCoefficient"):
        a.merge_state(0.5)


def test_errors_leave_the_state_unchanged():
    with pytest.raises(ValueError, match="`window_size` must be a positive integer"):
        SpatialCorrelationCoefficient(window_size=-1)
    with pytest.raises(TypeError, match="positional"):
        SpatialCorrelationCoefficient(None, 8, "NHWC")
    (p, t), = _batches((2,))
    m = SpatialCorrelationCoefficient(window_size=4)
    with pytest.raises(ValueError, match="same shape"):
        m.update(p, t[:1])
    with pytest.raises(ValueError, match=r"`mask` must have shape \(N,\) = \(2,\)"):
        m.update(p, t, mask=jnp.ones(3, bool))
    with pytest.raises(TypeError, match="`mask` must be a boolean array"):
        m(p, t, mask=jnp.ones(2))
    with pytest.raises(TypeError, match="`state` must be an SCCState"):
        scc_update((0.0, 0.0, 0), p, t)
    assert int(m.state.count) == 0
    assert "window_size=4" in repr(m) and m.config.window_size == 4


def test_live_parity_with_torchmetrics_module():
    torch = pytest.importorskip("torch", reason="torch not installed: live parity skipped")
    tm_image = pytest.importorskip("torchmetrics.image", reason="torchmetrics not installed")
    hp = ((0, -1, 0), (-1, 4, -1), (0, -1, 0))
    rng = np.random.default_rng(11)  # no flat regions: torchmetrics' float32 is fine there
    batches = []
    for n in (3, 3):
        t = rng.uniform(size=(n, 3, 24, 20)).astype(np.float32)
        batches.append(((0.6 * t + 0.4 * rng.uniform(size=t.shape)).astype(np.float32), t))
    ours = SpatialCorrelationCoefficient(hp_filter=hp, window_size=6)
    theirs = tm_image.SpatialCorrelationCoefficient(
        high_pass_filter=torch.tensor(hp, dtype=torch.float32), window_size=6
    )
    for p, t in batches:
        assert abs(float(ours(p, t)) - float(theirs(torch.from_numpy(p), torch.from_numpy(t)))) < 1e-5
    assert abs(float(ours.compute()) - float(theirs.compute())) < 1e-5
