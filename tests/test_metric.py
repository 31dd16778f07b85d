"""The stateful wrapper: torchmetrics-style update/compute/reset/forward over the pure state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference
from jax_scc import SCCState, SpatialCorrelationCoefficient
from jax_scc._src import metric as metric_lib


def _batches(sizes=(3, 2, 2), c=2, hw=(16, 16), seed=0, data_format="NCHW"):
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        shape = (n, c) + hw if data_format == "NCHW" else (n,) + hw + (c,)
        t = rng.random(shape).astype(np.float32)
        p = (t + 0.3 * rng.standard_normal(shape)).astype(np.float32)
        out.append((p, t))
    return out


def _ref_mean(batches, **kw):
    return np.concatenate(
        [reference.scc_per_sample(p.astype(np.float64), t.astype(np.float64), **kw) for p, t in batches]
    ).mean()


def test_seed_usage_prints_seed_score():
    from images import seed_pair

    recon, phantom = seed_pair()
    scc = SpatialCorrelationCoefficient()
    score = scc(preds=recon, target=phantom)
    assert abs(float(score) - 0.14591339230537415) <= 1e-6
    assert abs(float(scc.compute()) - 0.14591339230537415) <= 1e-6


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_accumulates_over_batches(data_format):
    kw = dict(window_size=4, data_format=data_format)
    batches = _batches(data_format=data_format)
    m = SpatialCorrelationCoefficient(**kw)
    for p, t in batches:
        m.update(p, t)
    assert int(m.state.count) == 7
    np.testing.assert_allclose(float(m.compute()), _ref_mean(batches, **kw), atol=1e-6, rtol=0)


def test_forward_returns_batch_score_and_accumulates():
    batches = _batches()
    m = SpatialCorrelationCoefficient(window_size=4)
    for p, t in batches:
        batch_score = m(p, t)
        expected = reference.scc_per_sample(p.astype(np.float64), t.astype(np.float64), window_size=4).mean()
        np.testing.assert_allclose(float(batch_score), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(float(m.compute()), _ref_mean(batches, window_size=4), atol=1e-6, rtol=0)
    # forward and update leave the same state.
    u = SpatialCorrelationCoefficient(window_size=4)
    for p, t in batches:
        u.update(p, t)
    for a, b in zip(m.state, u.state):
        assert np.asarray(a) == np.asarray(b)


def test_mask_in_update_and_forward():
    (p, t), = _batches((4,))
    mask = jnp.array([True, False, True, False])
    m = SpatialCorrelationCoefficient(window_size=4)
    score = m(p, t, mask=mask)
    ref = reference.scc_per_sample(p.astype(np.float64), t.astype(np.float64), window_size=4)
    np.testing.assert_allclose(float(score), ref[[0, 2]].mean(), atol=1e-6, rtol=0)
    m.update(p, t, mask=~mask)
    assert int(m.state.count) == 4
    np.testing.assert_allclose(float(m.compute()), ref.mean(), atol=1e-6, rtol=0)
    # A batch with every sample masked scores NaN and adds nothing.
    before = m.state
    assert np.isnan(float(m(p, t, mask=jnp.zeros(4, bool))))
    for a, b in zip(before, m.state):
        assert np.asarray(a) == np.asarray(b)


def test_compute_before_update_warns_and_returns_nan():
    m = SpatialCorrelationCoefficient()
    with pytest.warns(UserWarning, match=r"compute\(\) was called before any update\(\)"):
        assert np.isnan(float(m.compute()))


def test_reset():
    (p, t), = _batches((2,))
    m = SpatialCorrelationCoefficient(window_size=4)
    m.update(p, t)
    m.reset()
    assert int(m.state.count) == 0
    assert isinstance(m.state, SCCState)
    with pytest.warns(UserWarning, match="before any update"):
        assert np.isnan(float(m.compute()))
    m.update(p, -p)
    np.testing.assert_allclose(float(m.compute()), -1.0, atol=1e-6)


def test_one_trace_per_input_shape():
    # A shape and configuration no other test uses: nothing is compiled yet.
    batches = _batches((3, 3, 3, 2, 2), hw=(13, 11), seed=5)
    m = SpatialCorrelationCoefficient(window_size=3)
    before = dict(metric_lib.TRACE_COUNTS)
    for p, t in batches:
        m.update(p, t)
    for p, t in batches:
        m(p, t)
    after = metric_lib.TRACE_COUNTS
    assert after["update"] - before["update"] == 2  # batch sizes 3 and 2
    assert after["forward"] - before["forward"] == 2
    # A new instance with the same configuration reuses the compiled steps.
    m2 = SpatialCorrelationCoefficient(window_size=3)
    m2.update(*batches[0])
    assert metric_lib.TRACE_COUNTS["update"] == after["update"]


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
        m.update(*batches[1], mask=mask)
        result = m.compute()
    assert isinstance(result, jax.Array)
    assert int(m.state.count) == 4
    assert m.state.total.devices() == batches[0][0].devices()


def test_merge_state():
    b1, b2 = _batches((2, 3))
    a = SpatialCorrelationCoefficient(window_size=4)
    b = SpatialCorrelationCoefficient(window_size=4)
    a.update(*b1)
    b.update(*b2)
    a.merge_state(b)
    np.testing.assert_allclose(float(a.compute()), _ref_mean([b1, b2], window_size=4), atol=1e-6, rtol=0)
    c = SpatialCorrelationCoefficient(window_size=4)
    c.merge_state(jax_scc.scc_update(jax_scc.scc_init(), *b1, window_size=4))
    assert int(c.state.count) == 2


def test_errors():
    with pytest.raises(ValueError, match="`window_size` must be a positive integer"):
        SpatialCorrelationCoefficient(window_size=-1)
    with pytest.raises(ValueError, match="`data_format`"):
        SpatialCorrelationCoefficient(data_format="HWC")
    with pytest.raises(ValueError, match="`hp_filter` must be 2-D"):
        SpatialCorrelationCoefficient(hp_filter=[1.0, 2.0])
    (p, t), = _batches((2,))
    m = SpatialCorrelationCoefficient(window_size=4)
    with pytest.raises(ValueError, match="same shape"):
        m.update(p, t[:1])
    with pytest.raises(ValueError, match=r"`mask` must have shape \(N,\) = \(2,\)"):
        m.update(p, t, mask=jnp.ones(3, bool))
    with pytest.raises(TypeError, match="`mask` must be a boolean array"):
        m(p, t, mask=jnp.ones(2))
    with pytest.raises(ValueError, match="`window_size` must be at most the image size"):
        SpatialCorrelationCoefficient(window_size=17).update(p, t)
    with pytest.raises(ValueError, match="different configurations"):
        m.merge_state(SpatialCorrelationCoefficient(window_size=5))
    with pytest.raises(TypeError, match="`other` must be a SpatialCorrelationCoefficient"):
        m.merge_state(0.5)
    # Failed updates left nothing behind.
    assert int(m.state.count) == 0


def test_repr_and_config():
    m = SpatialCorrelationCoefficient(window_size=4, data_format="NHWC")
    assert m.config.window_size == 4 and m.config.data_format == "NHWC"
    assert "window_size=4" in repr(m)


# --- live parity with torchmetrics' module ----------------------------------------------


def test_live_parity_with_torchmetrics_module():
    torch = pytest.importorskip("torch", reason="torch not installed: live parity skipped")
    tm_image = pytest.importorskip(
        "torchmetrics.image", reason="torchmetrics not installed: live parity skipped"
    )
    hp = ((0, -1, 0), (-1, 4, -1), (0, -1, 0))
    batches = _batches((3, 1, 4), c=3, hw=(24, 20), seed=11)
    ours = SpatialCorrelationCoefficient(hp_filter=hp, window_size=6)
    theirs = tm_image.SpatialCorrelationCoefficient(
        high_pass_filter=torch.tensor(hp, dtype=torch.float32), window_size=6
    )
    for p, t in batches:
        ours_batch = float(ours(p, t))
        theirs_batch = float(theirs(torch.from_numpy(p), torch.from_numpy(t)))
        assert abs(ours_batch - theirs_batch) < 1e-5
    assert abs(float(ours.compute()) - float(theirs.compute())) < 1e-5
    # And ours is the float64 definition to 1e-6.
    np.testing.assert_allclose(
        float(ours.compute()), _ref_mean(batches, hp_filter=hp, window_size=6), atol=1e-6, rtol=0
    )
