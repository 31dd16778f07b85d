"""Images of different sizes in one canvas (``sizes=``, ``pad_to_canvas``): each
image scored as alone, against the float64 definition of the image by itself."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference as ref
from jax_scc.clu import SCC

MAP_TOL = 1e-5
MEAN_TOL = 1e-6
SIZES = [(20, 31), (33, 17), (40, 41), (9, 12)]  # the canvas is 40 x 41


def _images(seed, channels=2, sizes=SIZES):
    """(preds, target) lists of (C, h, w) float32 images with edges and noise."""
    rng = np.random.default_rng(seed)
    preds, target = [], []
    for h, w in sizes:
        coarse = rng.random((channels, -(-h // 3), -(-w // 3)))
        t = np.kron(coarse, np.ones((1, 3, 3)))[:, :h, :w].astype(np.float32)
        target.append(t)
        preds.append((t + 0.2 * rng.standard_normal(t.shape)).astype(np.float32))
    return preds, target


def _canvases(preds, target, data_format, fill=np.nan):
    """The canvases, padded with ``fill`` (never read), and the sizes."""
    (p, sizes), (t, _) = (jax_scc.pad_to_canvas(x) for x in (preds, target))
    for i, (h, w) in enumerate(sizes):
        p[i, :, h:], p[i, :, :, w:], t[i, :, h:], t[i, :, :, w:] = fill, fill, fill, fill
    if data_format == "NHWC":
        p, t = p.transpose(0, 2, 3, 1), t.transpose(0, 2, 3, 1)
    return p, t, sizes


@pytest.mark.parametrize(
    "data_format, window_size, hp_filter",
    [
        ("NCHW", 8, None),
        ("NHWC", 3, [[0, -1, 0], [-1, 4, -1], [0, -1, 0]]),
        ("NCHW", 4, [[1, -1], [-1, 1]]),  # even filter
        ("NHWC", 5, [[1, -2, 1], [-2, 4, -2]]),  # non-square
    ],
)
def test_each_image_scores_as_alone(data_format, window_size, hp_filter):
    """Scores and maps equal the float64 definition of each image by itself;
    the map is NaN outside each image; the canvas padding (NaN here) is never read."""
    preds, target = _images(0)
    p, t, sizes = _canvases(preds, target, data_format)
    options = dict(hp_filter=hp_filter, window_size=window_size, data_format=data_format)
    scores = jax_scc.spatial_correlation_coefficient(p, t, reduction="none", sizes=sizes, **options)
    maps = np.asarray(jax_scc.scc_map(p, t, sizes=sizes, **options))
    filt = ref.LAPLACIAN if hp_filter is None else np.asarray(hp_filter, np.float64)
    for i, (h, w) in enumerate(sizes):
        m = maps[i] if data_format == "NCHW" else maps[i].transpose(2, 0, 1)
        expected = ref.scc_map(preds[i][None], target[i][None], filt, window_size)[0]
        np.testing.assert_allclose(m[:, :h, :w], expected, atol=MAP_TOL, rtol=0)
        assert np.isnan(m[:, h:]).all() and np.isnan(m[:, :, w:]).all()
        assert abs(float(scores[i]) - expected.mean()) <= MEAN_TOL


def test_options_large_canvases_and_invalid_sizes():
    """ignore_nans/ignore_flat apply to each image's own pixels (a NaN next to
    an image's border is seen again through its own reflection); a canvas
    walked in bands of rows; sizes a per-image call refuses score NaN."""
    preds, target = _images(1, channels=1, sizes=[(30, 26), (24, 40), (20, 20)])
    preds[0][0, 29, 3] = np.nan  # the image's last row
    target[1][0, :8, :8] = 0.5  # flat
    p, t, sizes = _canvases(preds, target, "NCHW", fill=0.0)
    sizes[2] = (20, 5)  # narrower than the window: NaN
    options = dict(window_size=6, ignore_nans=True, ignore_flat=True)
    scores = jax_scc.spatial_correlation_coefficient(p, t, reduction="none", sizes=sizes, **options)
    for i in range(2):
        h, w = sizes[i]
        expected = ref.scc_per_sample(preds[i][None], target[i][None], window_size=6, ignore_nans=True, ignore_flat=True)
        assert abs(float(scores[i]) - expected[0]) <= MEAN_TOL
    assert np.isnan(scores[2])
    # One canvas of 700 x 420 (above the CPU walk's chunk: bands of rows).
    big_p, big_t = _images(2, channels=1, sizes=[(613, 401)])
    (bp, bs), (bt, _) = (jax_scc.pad_to_canvas(x, (700, 420)) for x in (big_p, big_t))
    score = jax_scc.spatial_correlation_coefficient(bp, bt, window_size=8, sizes=bs)
    assert abs(float(score) - ref.scc(big_p[0][None], big_t[0][None])) <= MEAN_TOL


def test_gradients_equal_per_image_and_vanish_in_the_padding():
    preds, target = _images(3, channels=1, sizes=[(20, 31), (33, 17)])
    p, t, sizes = _canvases(preds, target, "NCHW", fill=0.0)
    loss = lambda a, b: jax_scc.spatial_correlation_coefficient(a, b, window_size=4, sizes=sizes)  # noqa: E731
    gp, gt = jax.jit(jax.grad(loss, argnums=(0, 1)))(p, t)
    for i, (h, w) in enumerate(sizes):
        alone = jax.grad(
            lambda a, b: jax_scc.spatial_correlation_coefficient(a, b, window_size=4) / 2, argnums=(0, 1)
        )(preds[i][None], target[i][None])
        for g, expected in zip((gp, gt), alone):
            scale = float(jnp.abs(expected).max())
            np.testing.assert_allclose(np.asarray(g[i, :, :h, :w]), np.asarray(expected[0]), atol=1e-5 * scale, rtol=0)
            assert not np.asarray(g[i, :, h:]).any() and not np.asarray(g[i, :, :, w:]).any()


def test_one_compilation_serves_every_size_and_every_entry_point_takes_sizes():
    preds, target = _images(4)
    p, t, sizes = _canvases(preds, target, "NCHW", fill=0.0)
    expected = np.array(
        [ref.scc_per_sample(a[None], b[None])[0] for a, b in zip(preds, target)]
    )

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, p, t, sizes):
        return jax_scc.scc_update(state, p, t, sizes=sizes)

    state = step(jax_scc.scc_init(), p, t, sizes)
    assert abs(float(jax_scc.scc_compute(state)) - expected.mean()) <= MEAN_TOL
    for other in ([(40, 41)] * 4, [(12, 9), (8, 8), (39, 20), (25, 25)]):  # no retrace
        step(state, p, t, np.asarray(other, np.int32))
    metric = jax_scc.SpatialCorrelationCoefficient()
    metric.update(p[:2], t[:2], sizes=sizes[:2])
    assert abs(float(metric(p[2:], t[2:], sizes=sizes[2:])) - expected[2:].mean()) <= MEAN_TOL
    assert abs(float(metric.compute()) - expected.mean()) <= MEAN_TOL
    clu_metric = SCC.from_model_output(preds=p, target=t, sizes=sizes, mask=np.array([1, 1, 0, 1]))
    assert abs(float(clu_metric.compute()) - expected[[0, 1, 3]].mean()) <= MEAN_TOL


def test_bad_sizes_and_canvases():
    x = np.zeros((2, 1, 16, 16), np.float32)
    with pytest.raises(ValueError, match=r"`sizes` must have shape \(N, 2\) = \(2, 2\).*\(2,\)"):
        jax.jit(lambda s: jax_scc.spatial_correlation_coefficient(x, x, sizes=s))(np.array([16, 16]))
    with pytest.raises(TypeError, match="`sizes` must be an array of integers"):
        jax_scc.scc_map(x, x, sizes=np.full((2, 2), 16.0))
    with pytest.raises(ValueError, match=r"`canvas` must be .* at least the largest image's 16x20, got \(16, 16\)"):
        jax_scc.pad_to_canvas([np.zeros((16, 20)), np.zeros((8, 8))], (16, 16))
    with pytest.raises(ValueError, match="same number of channels"):
        jax_scc.pad_to_canvas([np.zeros((4, 4, 3)), np.zeros((4, 4, 1))], data_format="NHWC")
    batch, sizes = jax_scc.pad_to_canvas([np.ones((4, 5, 3), np.uint8), np.ones((6, 2, 3), np.uint8)], data_format="NHWC")
    assert batch.shape == (2, 6, 5, 3) and batch.dtype == np.uint8 and sizes.tolist() == [[4, 5], [6, 2]]
    assert batch[0, 4:].sum() == 0 and batch[1, :, 2:].sum() == 0


def test_whole_graph_strategy_honours_the_extents():
    """The one-graph strategy (GPU/TPU), run here on CPU: map, scores and
    gradients with sizes agree with the chunk walk's."""
    from jax_scc._src import extents
    from jax_scc._src.config import make_config
    from jax_scc._src.execution import chunked, whole

    preds, target = _images(5, channels=1, sizes=[(20, 31), (33, 17)])
    p, t, sizes = _canvases(preds, target, "NHWC", fill=0.0)
    config = dataclasses.replace(make_config(None, 5, data_format="NHWC", ignore_flat=True), extents=True)

    def run(module):
        def both(p, t):
            p, t = (extents.reflect_at_extents(x, sizes, config) for x in (p, t))
            m = module.scc_map(p, t, config, "slices", sizes=sizes)
            s, grads, _ = module.scores(p, t, config, "slices", gradients=(True, False), sizes=sizes)
            return m, s, grads[0]

        return jax.jit(both)(p, t)

    (m, s, g), (m_walk, s_walk, g_walk) = run(whole), run(chunked)
    np.testing.assert_allclose(m, m_walk, atol=1e-5, rtol=0, equal_nan=True)
    np.testing.assert_allclose(s, s_walk, atol=1e-6, rtol=0)
    np.testing.assert_allclose(g, g_walk, atol=1e-5 * float(np.abs(g_walk).max()), rtol=0)
    assert np.isnan(np.asarray(m)[0, 20:]).all() and np.isfinite(np.asarray(s)).all()
