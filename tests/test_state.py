"""The pure running totals: exact double-float sums of per-sample scores, masks,
merges, the empty state, and no retracing. (Scoring images into them:
tests/test_metric.py; summing them over devices: tests/test_distributed.py.)"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_scc import SCCState, scc_compute, scc_init, scc_merge
from jax_scc._src.state import add_scores


def exact(state):
    """``total + compensation`` as a float64."""
    return np.float64(state.total) + np.float64(state.compensation)


def _states(seed=0):
    rng = np.random.default_rng(seed)
    return [add_scores(scc_init(), rng.uniform(-1, 1, n).astype(np.float32)) for n in (2, 3, 4)]


def test_init_has_fixed_dtypes_and_shapes():
    s = scc_init()
    assert isinstance(s, SCCState)
    assert [(x.shape, x.dtype) for x in s] == [((), jnp.float32), ((), jnp.float32), ((), jnp.int32)]
    assert int(s.count) == 0 and float(s.total) == 0.0 and float(s.compensation) == 0.0
    assert len(jax.tree_util.tree_leaves(s)) == 3


def test_a_batch_of_scores_is_summed_exactly():
    """10^5 scores in one update (pairwise TwoSum inside the batch)."""
    scores = np.random.default_rng(1).uniform(-1, 1, 100_003).astype(np.float32)
    s = jax.jit(add_scores)(scc_init(), scores)
    assert abs(exact(s) - math.fsum(scores.astype(np.float64))) <= 1e-12 * abs(math.fsum(scores))
    assert int(s.count) == scores.size


@pytest.mark.parametrize(
    "mask",
    [[True] * 6, [True, True, True, True, False, False], [False, True, False, True, True, False], [False] * 6],
    ids=["all", "tail", "scattered", "none"],
)
def test_mask_drops_samples_even_nan_ones(mask):
    scores = np.array([0.5, np.nan, -0.25, 0.125, np.inf, 1.0], np.float32)
    mask = np.array(mask)
    scores = np.where(mask, np.nan_to_num(scores, posinf=0.0), scores)  # unmasked: finite
    s = jax.jit(add_scores)(scc_init(), scores, jnp.asarray(mask))
    assert int(s.count) == mask.sum()
    if mask.any():
        assert exact(s) == math.fsum(scores[mask].astype(np.float64))
        assert float(scc_compute(s)) == pytest.approx(scores[mask].mean(), abs=1e-7)
    else:
        assert np.isnan(float(scc_compute(s)))


def test_float64_scores_keep_float64_accuracy():
    with jax.enable_x64(True):
        scores = jnp.asarray(np.array([0.1, 1 / 3, -2 / 7, 1e-9], np.float64))
        s = add_scores(scc_init(), scores)
        assert s.total.dtype == jnp.float32 and s.count.dtype == jnp.int32
        assert abs(exact(s) - math.fsum(np.asarray(scores))) < 1e-13


def test_merge_is_commutative_associative_and_has_the_empty_identity():
    a, b, c = _states()
    for x, y in zip(scc_merge(a, b), scc_merge(b, a)):  # commutative: bitwise
        assert np.asarray(x) == np.asarray(y)
    left, right = scc_merge(scc_merge(a, b), c), scc_merge(a, scc_merge(b, c))
    assert int(left.count) == int(right.count) == 9
    assert abs(exact(left) - exact(right)) <= 1e-12
    for x, y in zip(scc_merge(a, scc_init()), a):
        assert np.asarray(x) == np.asarray(y)


def test_empty_state_computes_nan():
    assert np.isnan(float(scc_compute(scc_init())))
    assert np.isnan(float(jax.jit(scc_compute)(scc_init())))


def test_running_totals_do_not_drift():
    """2^20 updates of one score each (a jitted scan): the compensated pair stays at
    the exact sum to ~1e-12 (relative), where a float32 running sum of the same
    scores has drifted by more than 1e-6 (measured at 10^7 updates:
    benchmarks/state_drift.py)."""
    scores = np.random.default_rng(0).uniform(0, 1, (1 << 20, 1)).astype(np.float32)

    @jax.jit
    def both(xs):
        def step(carry, x):
            state, naive = carry
            return (add_scores(state, x), naive + x[0]), None

        return jax.lax.scan(step, (scc_init(), jnp.float32(0)), xs)[0]

    state, naive = both(scores)
    truth = math.fsum(scores.ravel().astype(np.float64))
    assert int(state.count) == scores.size
    assert abs(exact(state) - truth) / truth < 1e-12
    assert abs(float(naive) - truth) / truth > 1e-6  # what the compensation removes


def test_a_jitted_loop_traces_once():
    chex.clear_trace_counter()
    merge = jax.jit(chex.assert_max_traces(scc_merge, n=1))
    a, b, c = _states()
    merge(merge(merge(a, b), c), scc_init())

    def body(s, x):
        return add_scores(s, x), None

    s, _ = jax.jit(lambda xs: jax.lax.scan(body, scc_init(), xs))(jnp.ones((5, 3)))
    assert int(s.count) == 15 and exact(s) == 15.0


def test_bad_states_scores_and_masks():
    with pytest.raises(TypeError, match="`state` must be an SCCState"):
        add_scores((0.0, 0.0, 0), jnp.ones(2))
    with pytest.raises(TypeError, match=r"`state.count` must be a scalar of dtype int32"):
        add_scores(SCCState(jnp.float32(0), jnp.float32(0), jnp.float32(0)), jnp.ones(2))
    with pytest.raises(TypeError, match="`b` must be an SCCState"):
        scc_merge(scc_init(), None)
    with pytest.raises(TypeError, match="`state` must be an SCCState"):
        scc_compute({"total": 0})
    with pytest.raises(ValueError, match="`scores` must be a 1-D float array"):
        add_scores(scc_init(), jnp.ones((2, 2)))
    for jit in (False, True):
        add = jax.jit(add_scores) if jit else add_scores
        with pytest.raises(ValueError, match=r"`mask` must have shape \(N,\) = \(4,\).*\(3,\)"):
            add(scc_init(), jnp.ones(4), jnp.ones(3, bool))
        with pytest.raises(TypeError, match="`mask` must be a boolean array, got dtype int32"):
            add(scc_init(), jnp.ones(4), jnp.ones(4, jnp.int32))
