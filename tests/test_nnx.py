"""jax_scc.nnx.SCC in flax.nnx: a jitted eval step, MultiMetric, masks, reset.

(The sharded batch on 4 devices is in tests/_dist_devices.py; that ``import
jax_scc`` loads no flax is checked in tests/test_cli.py.)
"""

import numpy as np
import pytest

nnx = pytest.importorskip("flax.nnx")

import jax.numpy as jnp  # noqa: E402

import jax_scc  # noqa: E402
from jax_scc.nnx import SCC  # noqa: E402

WS = 4


def _data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.random((n, 2, 16, 16), dtype=np.float32)
    p = (t + 0.3 * rng.standard_normal(t.shape)).astype(np.float32)
    return p, t


def test_jitted_eval_step_in_multimetric_equals_functional_mean():
    p, t = _data()
    p[5] = np.nan  # the padding of the last batch: masked out
    mask = np.arange(6) < 5
    metrics = nnx.MultiMetric(loss=nnx.metrics.Average("loss"), scc=SCC(window_size=WS))
    traces = []

    @nnx.jit
    def eval_step(metrics, p, t, mask):
        traces.append(1)
        loss = jnp.mean(jnp.nan_to_num(p - t) ** 2, axis=(1, 2, 3))
        metrics.update(loss=loss, preds=p, target=t, mask=mask)  # `loss` is not SCC's

    for i in range(3):
        b = slice(2 * i, 2 * i + 2)
        eval_step(metrics, p[b], t[b], mask[b])
    assert len(traces) == 1  # the configuration is static: one compilation
    result = metrics.compute()
    expected = jax_scc.spatial_correlation_coefficient(p[:5], t[:5], window_size=WS)
    np.testing.assert_allclose(result["scc"], expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(result["loss"], np.mean(np.mean((p[:5] - t[:5]) ** 2, axis=(1, 2, 3))), rtol=1e-5)
    assert int(metrics.scc.count[...]) == 5 and metrics.scc.state.total.dtype == jnp.float32
    metrics.reset()
    assert np.isnan(metrics.compute()["scc"]) and int(metrics.scc.count[...]) == 0


def test_configuration_names_and_errors():
    p, t = _data(2, seed=1)
    metric = SCC(window_size=WS, ignore_flat=True, data_format="NHWC", preds_name="outputs", target_name="labels")
    metric.update(outputs=p.transpose(0, 2, 3, 1), labels=t.transpose(0, 2, 3, 1), mask=np.array([1, 0]))
    expected = jax_scc.spatial_correlation_coefficient(p[:1], t[:1], window_size=WS, ignore_flat=True)
    np.testing.assert_allclose(metric.compute(), expected, atol=1e-6, rtol=0)
    with pytest.raises(TypeError, match="'labels'"):
        metric.update(outputs=p)
    with pytest.raises(ValueError, match="window_size"):
        SCC(window_size=0)


def test_images_of_different_sizes_in_one_batch():
    """``sizes`` reaches the definition (it is not one of the keywords a
    MultiMetric's other metrics get): each image scores as alone."""
    p, t = _data(2, seed=2)
    batch, sizes = jax_scc.pad_to_canvas([p[0, :, :12, :10], p[1]])
    target, _ = jax_scc.pad_to_canvas([t[0, :, :12, :10], t[1]])
    metric = SCC(window_size=WS)
    metric.update(preds=batch, target=target, sizes=sizes)
    expected = np.mean([
        float(jax_scc.spatial_correlation_coefficient(p[:1, :, :12, :10], t[:1, :, :12, :10], window_size=WS)),
        float(jax_scc.spatial_correlation_coefficient(p[1:], t[1:], window_size=WS)),
    ])
    np.testing.assert_allclose(metric.compute(), expected, atol=1e-6, rtol=0)
