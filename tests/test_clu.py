"""jax_scc.clu.SCC in clu.metrics Collections: merge, reduce, masks, jit, config."""


import numpy as np
import pytest

clu_metrics = pytest.importorskip("clu.metrics")
flax_struct = pytest.importorskip("flax.struct")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jax_scc  # noqa: E402
from jax_scc.clu import SCC  # noqa: E402

SHAPE = (3, 2, 16, 16)


def _batches(n_batches=3, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        t = rng.uniform(size=shape).astype(np.float32)
        p = (0.7 * t + 0.3 * rng.uniform(size=shape)).astype(np.float32)
        out.append((p, t))
    return out


def test_collection_with_average_matches_functional():
    Metrics = clu_metrics.Collection.create(
        scc=SCC.with_config(window_size=4), loss=clu_metrics.Average.from_output("loss")
    )
    batches = _batches()
    col = Metrics.empty()
    for i, (p, t) in enumerate(batches):
        col = col.merge(
            Metrics.single_from_model_output(preds=p, target=t, loss=jnp.full(3, float(i)))
        )
    result = col.compute()
    all_p = np.concatenate([p for p, _ in batches])
    all_t = np.concatenate([t for _, t in batches])
    expected = jax_scc.spatial_correlation_coefficient(all_p, all_t, window_size=4)
    np.testing.assert_allclose(float(result["scc"]), float(expected), atol=1e-6, rtol=0)
    assert float(result["loss"]) == pytest.approx(1.0)
    assert result["scc"].dtype == jnp.float32


def test_jit_step_traces_once_and_merge_matches():
    Metric = SCC.with_config(window_size=4)
    traces = []

    @jax.jit
    def step(state, p, t):
        traces.append(1)
        return state.merge(Metric.from_model_output(p, t))

    state = Metric.empty()
    batches = _batches(seed=1)
    for p, t in batches:
        state = step(state, p, t)
    assert len(traces) == 1
    assert int(state.count) == 9
    eager = Metric.empty()
    for p, t in batches:
        eager = eager.merge(Metric.from_model_output(p, t))
    np.testing.assert_allclose(float(state.compute()), float(eager.compute()), atol=1e-7)


@pytest.mark.parametrize("mask_dtype", [bool, np.int32, np.float32])
def test_mask_excludes_samples_even_nan(mask_dtype):
    Metric = SCC.with_config(window_size=4)
    (p, t), = _batches(1, seed=2)
    p = p.copy()
    p[1] = np.nan  # padding sample: garbage, masked out
    mask = np.array([1, 0, 1], mask_dtype)
    state = Metric.from_model_output(p, t, mask=mask)
    expected = jax_scc.spatial_correlation_coefficient(p[[0, 2]], t[[0, 2]], window_size=4)
    assert int(state.count) == 2
    np.testing.assert_allclose(float(state.compute()), float(expected), atol=1e-6, rtol=0)
    # Inside a Collection the "mask" model output is forwarded the same way.
    Metrics = clu_metrics.Collection.create(scc=Metric)
    col = Metrics.single_from_model_output(preds=p, target=t, mask=mask)
    np.testing.assert_allclose(float(col.compute()["scc"]), float(expected), atol=1e-6, rtol=0)


def test_mask_shape_checked():
    (p, t), = _batches(1)
    with pytest.raises(ValueError, match="`mask` must have shape"):
        SCC.from_model_output(p, t, mask=np.ones(2, bool))


def test_reduce_over_gathered_axis_is_merge():
    Metric = SCC.with_config(window_size=4)
    states = [Metric.from_model_output(p, t) for p, t in _batches(seed=3)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
    reduced = stacked.reduce()
    merged = states[0].merge(states[1]).merge(states[2])
    assert int(reduced.count) == int(merged.count) == 9
    np.testing.assert_allclose(float(reduced.compute()), float(merged.compute()), atol=1e-7)


def test_empty_is_neutral_and_nan_before_data():
    Metric = SCC.with_config(window_size=4)
    (p, t), = _batches(1, seed=4)
    one = Metric.from_model_output(p, t)
    both = Metric.empty().merge(one)
    assert float(both.compute()) == float(one.compute())
    assert np.isnan(float(Metric.empty().compute()))


def test_config_and_default_class():
    (p, t), = _batches(1, seed=5)
    default = SCC.from_model_output(p, t)
    np.testing.assert_allclose(
        float(default.compute()), float(jax_scc.spatial_correlation_coefficient(p, t)), atol=1e-6
    )
    assert SCC.with_config(window_size=4) is SCC.with_config(window_size=4)
    nhwc = SCC.with_config(window_size=4, data_format="NHWC", hp_filter=((1, -1), (-1, 1)))
    got = nhwc.from_model_output(p.transpose(0, 2, 3, 1), t.transpose(0, 2, 3, 1)).compute()
    expected = jax_scc.spatial_correlation_coefficient(
        p, t, window_size=4, hp_filter=((1, -1), (-1, 1))
    )
    np.testing.assert_allclose(float(got), float(expected), atol=1e-6, rtol=0)


def test_every_option_is_passed_through():
    Metric = SCC.with_config(None, 4, ignore_nans=True, ignore_flat=True, method="conv")
    assert (Metric.ignore_nans, Metric.ignore_flat, Metric.method) == (True, True, "conv")
    (p, t), = _batches(1, seed=6)
    p = p.copy()
    p[0, 0, 2:5, 2:5] = np.nan
    t[1, :, :8] = 0.5  # a flat region of the target
    got = Metric.from_model_output(p, t).compute()
    expected = jax_scc.spatial_correlation_coefficient(p, t, window_size=4, ignore_nans=True, ignore_flat=True)
    assert np.isfinite(float(got))
    np.testing.assert_allclose(float(got), float(expected), atol=1e-6, rtol=0)


def test_hand_written_subclass():
    from typing import ClassVar

    @flax_struct.dataclass
    class SCC4(SCC):
        window_size: ClassVar[int] = 4

    (p, t), = _batches(1, seed=7)
    expected = SCC.with_config(window_size=4).from_model_output(p, t).compute()
    got = jax.jit(lambda a, b: SCC4.from_model_output(a, b))(p, t).compute()
    np.testing.assert_allclose(float(got), float(expected), atol=1e-7)


def test_errors():
    (p, t), = _batches(1)
    with pytest.raises(TypeError, match="with_config"):
        SCC.from_model_output(p, t, window_size=4)
    with pytest.raises(ValueError, match="`window_size`"):
        SCC.with_config(window_size=0)
    with pytest.raises(TypeError, match="`ignore_nans`"):
        SCC.with_config(ignore_nans=1)
    with pytest.raises(TypeError, match="positional"):
        SCC.with_config(None, 8, "NHWC")
    with pytest.raises(ValueError, match="same shape"):
        SCC.from_model_output(p, t[:, :1])
