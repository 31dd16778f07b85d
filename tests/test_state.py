"""The pure metric state: init/update/merge/compute, masks, exact totals, jit/scan,
no retracing, and errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference
from jax_scc import SCCState, scc_compute, scc_init, scc_merge, scc_update
from jax_scc._src.state import add_scores, df_to_float64


def _batch(n=6, c=2, hw=(20, 18), seed=0, data_format="NCHW"):
    rng = np.random.default_rng(seed)
    shape = (n, c) + hw if data_format == "NCHW" else (n,) + hw + (c,)
    target = rng.random(shape).astype(np.float32)
    preds = (target + 0.3 * rng.standard_normal(shape)).astype(np.float32)
    return preds, target


def _ref_scores(preds, target, **kw):
    return reference.scc_per_sample(
        preds.astype(np.float64), target.astype(np.float64), **kw
    )


def test_init_has_fixed_dtypes_and_shapes():
    s = scc_init()
    assert isinstance(s, SCCState)
    assert [(x.shape, x.dtype) for x in s] == [
        ((), jnp.float32),
        ((), jnp.float32),
        ((), jnp.int32),
    ]
    assert int(s.count) == 0 and float(s.total) == 0.0 and float(s.compensation) == 0.0
    # A pytree: leaves in field order.
    assert len(jax.tree_util.tree_leaves(s)) == 3


def test_update_state_has_same_avals_as_init():
    p, t = _batch()
    s0 = scc_init()
    s1 = scc_update(s0, p, t)
    avals = lambda s: [jax.typeof(x) for x in s]  # noqa: E731
    assert avals(s0) == avals(s1)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_update_compute_matches_float64_reference(jit, data_format):
    kw = dict(window_size=5, data_format=data_format)
    batches = [_batch(n, seed=i, data_format=data_format) for i, n in enumerate((3, 5, 1))]

    def update(s, p, t):
        return scc_update(s, p, t, **kw)

    if jit:
        update = jax.jit(update)
    s = scc_init()
    for p, t in batches:
        s = update(s, p, t)
    ref = np.concatenate([_ref_scores(p, t, **kw) for p, t in batches])
    assert int(s.count) == ref.size
    np.testing.assert_allclose(float(scc_compute(s)), ref.mean(), atol=1e-6, rtol=0)
    # The state's sum is the float32 per-sample scores' sum to double-float accuracy.
    ours = np.concatenate(
        [np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none", **kw))
         for p, t in batches]
    ).astype(np.float64)
    assert abs(df_to_float64(s) - math.fsum(ours)) <= 1e-12 * max(1.0, abs(math.fsum(ours)))


@pytest.mark.parametrize(
    "mask",
    [
        [True] * 6,
        [True, True, True, True, False, False],  # padded last batch
        [False, True, False, True, True, False],
        [False] * 6,
    ],
    ids=["all", "tail", "scattered", "none"],
)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_mask_drops_samples(mask, jit):
    p, t = _batch(6, seed=3)
    mask = np.array(mask)
    update = jax.jit(scc_update) if jit else scc_update
    s = update(scc_init(), p, t, mask=jnp.asarray(mask))
    assert int(s.count) == mask.sum()
    if mask.any():
        expected = _ref_scores(p, t)[mask].mean()
        np.testing.assert_allclose(float(scc_compute(s)), expected, atol=1e-6, rtol=0)
        # The exact sum of the kept samples' float32 scores.
        scores = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none"))
        kept = math.fsum(scores[mask].astype(np.float64))
        assert abs(df_to_float64(s) - kept) <= 1e-12
    else:
        assert np.isnan(float(scc_compute(s)))


def test_masked_out_nan_samples_contribute_nothing():
    p, t = _batch(4, seed=4)
    p = p.copy()
    p[1, 0, 3, 3] = np.nan
    p[3] = np.inf
    mask = jnp.array([True, False, True, False])
    s = scc_update(scc_init(), p, t, mask=mask)
    expected = _ref_scores(p[[0, 2]], t[[0, 2]]).mean()
    np.testing.assert_allclose(float(scc_compute(s)), expected, atol=1e-6, rtol=0)
    # Unmasked, the NaN sample makes the result NaN.
    assert np.isnan(float(scc_compute(scc_update(scc_init(), p, t))))


def test_empty_state_computes_nan():
    assert np.isnan(float(scc_compute(scc_init())))
    assert np.isnan(float(jax.jit(scc_compute)(scc_init())))


def test_merge_is_commutative_and_associative():
    states = []
    for i in range(3):
        p, t = _batch(2 + i, seed=10 + i)
        states.append(scc_update(scc_init(), p, t))
    a, b, c = states
    ab, ba = scc_merge(a, b), scc_merge(b, a)
    for x, y in zip(ab, ba):  # commutative: bitwise
        assert np.asarray(x) == np.asarray(y)
    left = scc_merge(scc_merge(a, b), c)
    right = scc_merge(a, scc_merge(b, c))
    assert int(left.count) == int(right.count) == 9
    assert abs(df_to_float64(left) - df_to_float64(right)) <= 1e-12
    assert float(scc_compute(left)) == float(scc_compute(right))
    # Merging per-batch states equals updating one state with every batch.
    seq = scc_init()
    for i in range(3):
        seq = scc_update(seq, *_batch(2 + i, seed=10 + i))
    assert abs(df_to_float64(seq) - df_to_float64(left)) <= 1e-12
    # The empty state is the identity.
    for x, y in zip(scc_merge(a, scc_init()), a):
        assert np.asarray(x) == np.asarray(y)


def test_no_retrace_for_fixed_batch_shape():
    traces = []

    @jax.jit
    def step(state, p, t, mask):
        traces.append(1)
        return scc_update(state, p, t, window_size=4, mask=mask)

    s = scc_init()
    for i in range(4):
        p, t = _batch(4, seed=i, hw=(12, 12))
        s = step(s, p, t, jnp.array([True, True, i % 2 == 0, False]))
    assert len(traces) == 1
    merged = jax.jit(scc_merge)
    merged(s, s)
    merged(merged(s, s), s)
    assert merged._cache_size() == 1


@pytest.mark.parametrize("loop", ["scan", "fori_loop"])
def test_inside_scan_and_fori_loop(loop):
    rng = np.random.default_rng(7)
    target = rng.random((5, 3, 1, 16, 16)).astype(np.float32)  # 5 batches of 3
    preds = (target + 0.2 * rng.standard_normal(target.shape)).astype(np.float32)
    masks = np.ones((5, 3), bool)
    masks[-1, 1:] = False  # last batch padded

    @jax.jit
    def run(preds, target, masks):
        if loop == "scan":
            def body(s, xs):
                return scc_update(s, *xs[:2], mask=xs[2]), None

            s, _ = jax.lax.scan(body, scc_init(), (preds, target, masks))
        else:
            def body(i, s):
                return scc_update(s, preds[i], target[i], mask=masks[i])

            s = jax.lax.fori_loop(0, 5, body, scc_init())
        return s, scc_compute(s)

    s, score = run(preds, target, masks)
    flat = masks.ravel()
    ref = _ref_scores(preds.reshape(15, 1, 16, 16), target.reshape(15, 1, 16, 16))[flat]
    assert int(s.count) == 13
    np.testing.assert_allclose(float(score), ref.mean(), atol=1e-6, rtol=0)


def test_float64_scores_are_split_exactly():
    """With x64 on, float64 per-sample scores keep ~float64 accuracy in the pair."""
    with jax.enable_x64(True):
        scores = jnp.asarray(np.array([0.1, 1 / 3, -2 / 7, 1e-9], np.float64))
        s = add_scores(scc_init(), scores)
        assert s.total.dtype == jnp.float32 and s.count.dtype == jnp.int32
        assert abs(df_to_float64(s) - math.fsum(np.asarray(scores))) < 1e-13


def test_ten_million_updates_stay_exact():
    """10^7 updates of one random score in [-1, 1] (a jitted scan over the accumulate
    step): the compensated total stays within 1e-6 relative of the exact sum, while a
    naive float32 running sum of the same scores is clearly worse (so this test can
    tell the two apart). Measured numbers: benchmarks/state_drift.py."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "state_drift", Path(__file__).parent.parent / "benchmarks" / "state_drift.py"
    )
    drift = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drift)
    r = drift.run(10_000_000, seed=0)
    assert r["count"] == 10_000_000
    assert r["rel_err_compensated"] < 1e-6
    assert r["rel_err_compensated"] < 1e-10  # what the pair actually achieves (~3e-14)
    assert r["rel_err_naive"] > 1e-5  # the naive float32 sum has drifted
    assert r["rel_err_naive"] > 1000 * r["rel_err_compensated"]


def test_large_batch_sum_is_exact():
    """One update of 10^5 scores (pairwise TwoSum inside the batch)."""
    rng = np.random.default_rng(1)
    scores = rng.uniform(-1, 1, 100_003).astype(np.float32)
    s = jax.jit(add_scores)(scc_init(), scores)
    exact = math.fsum(scores.astype(np.float64))
    assert abs(df_to_float64(s) - exact) <= 1e-12 * abs(exact)
    assert int(s.count) == scores.size


# --- errors -----------------------------------------------------------------------


def test_bad_state_type():
    p, t = _batch(2)
    with pytest.raises(TypeError, match="`state` must be an SCCState"):
        scc_update((0.0, 0.0, 0), p, t)
    with pytest.raises(TypeError, match=r"`state.count` must be a scalar of dtype int32"):
        scc_update(SCCState(jnp.float32(0), jnp.float32(0), jnp.float32(0)), p, t)
    with pytest.raises(TypeError, match="`b` must be an SCCState"):
        scc_merge(scc_init(), None)
    with pytest.raises(TypeError, match="`state` must be an SCCState"):
        scc_compute({"total": 0})


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_bad_mask(jit):
    p, t = _batch(4)
    update = jax.jit(scc_update) if jit else scc_update
    with pytest.raises(ValueError, match=r"`mask` must have shape \(N,\) = \(4,\).*\(3,\)"):
        update(scc_init(), p, t, mask=jnp.ones(3, bool))
    with pytest.raises(ValueError, match=r"`mask` must have shape.*\(4, 1\)"):
        update(scc_init(), p, t, mask=jnp.ones((4, 1), bool))
    with pytest.raises(TypeError, match="`mask` must be a boolean array, got dtype int32"):
        update(scc_init(), p, t, mask=jnp.ones(4, jnp.int32))
    if not jit:  # under jit, jax itself rejects a str argument
        with pytest.raises(TypeError, match="`mask` must be an array"):
            update(scc_init(), p, t, mask="all")


def test_bad_images_and_config_are_reported():
    p, t = _batch(2)
    with pytest.raises(ValueError, match="same shape"):
        scc_update(scc_init(), p, t[:1])
    with pytest.raises(ValueError, match="`window_size` must be a positive integer"):
        scc_update(scc_init(), p, t, window_size=0)
    with pytest.raises(ValueError, match="`data_format`"):
        scc_update(scc_init(), p, t, data_format="CHW")


def test_options_are_keyword_only():
    p, t = _batch(2)
    with pytest.raises(TypeError):
        scc_update(scc_init(), p, t, None, 8)  # noqa
