"""How the definition runs: the strategy chosen per backend, the CPU chunk walk
(whole samples, planes, bands of rows) against the one-graph strategy, the
pairing methods, the fusion barrier, and the memory the walk needs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference as ref
from images import photo, quantize, structured_pair
from jax_scc._src import definition, execution, moments
from jax_scc._src.config import make_config
from jax_scc._src.execution import chunked, kernel, whole
from jax_scc._src.execution.fusion import stage
from jax_scc._src.moments import local_moments


def test_strategy_per_platform():
    auto = make_config()
    assert execution.strategy(auto, "cpu")[:2] == ("chunked", "slices")
    assert execution.strategy(make_config(window_size=5), "cpu")[:2] == ("chunked", "direct")
    assert execution.strategy(make_config(method="conv"), "cpu")[:2] == ("chunked", "conv")
    for platform in ("cuda", "rocm"):
        assert execution.strategy(auto, platform) == ("whole", "direct", "strips", "levels")
        assert execution.strategy(make_config(window_size=9), platform) == ("whole", "slices", "strips", "levels")
    assert execution.strategy(auto, "tpu") == ("kernel", "slices", "padded", "two_pass")
    assert execution.strategy(make_config(method="direct"), "tpu") == ("whole", "direct", "padded", "two_pass")


def test_the_program_follows_the_platform_it_is_compiled_for():
    """The strategy is chosen when the program is lowered, for the platform it
    is lowered for, not by the process's default backend: from this CPU-only
    process, the CUDA and TPU programs are the loop-free whole graph, the CPU
    one the chunk walk (a while loop), and one export for several platforms
    carries each platform's own."""
    x = jax.ShapeDtypeStruct((4, 1, 512, 512), jnp.float32)  # more than one chunk on CPU
    loss = jax.jit(jax.value_and_grad(lambda p, t: 1.0 - jax_scc.spatial_correlation_coefficient(p, t)))

    def lowered(*platforms):
        return jax.export.export(loss, platforms=platforms)(x, x).mlir_module()

    assert "stablehlo.while" in lowered("cpu")
    for platform in ("cuda", "tpu"):
        assert "stablehlo.while" not in lowered(platform), platform
    # TPU's value and gradient are the Pallas kernel; the map's tangent, the whole graph.
    assert "tpu_custom_call" in lowered("tpu")
    tangent = jax.jit(lambda p, t: jax.jvp(lambda p: jax_scc.scc_map(p, t), (p,), (t,)))
    assert "tpu_custom_call" not in jax.export.export(tangent, platforms=["tpu"])(x, x).mlir_module()
    # Second order differentiates every platform's first derivative: TPU's is
    # its whole graph there (JAX cannot differentiate a kernel), and it runs here.
    p = jnp.asarray(np.random.default_rng(0).random((1, 1, 16, 130), np.float32))
    grad = jax.grad(lambda p: jax_scc.spatial_correlation_coefficient(p, 0.5 * p + jnp.sin(p)))
    hvp = jax.jit(lambda p, v: jax.jvp(grad, (p,), (v,))[1])
    assert np.all(np.isfinite(hvp(p, jnp.ones_like(p))))
    assert "stablehlo.while" not in jax.export.export(hvp, platforms=["tpu"])(p, p).mlir_module()
    both = lowered("cpu", "cuda")
    assert "stablehlo.while" in both and "stablehlo.case" in both


@pytest.fixture
def small_chunks(monkeypatch):
    """Makes the walker cut tiny batches into many chunks and bands."""

    def set_chunk(pixels):
        monkeypatch.setattr(chunked, "_CHUNK_PIXELS", pixels)
        monkeypatch.setattr(chunked, "_MIN_BAND_ROWS", 4)

    return set_chunk


# (shape in its layout, chunk pixels, window, layout, the walk that must result, ignore_nans)
WALKS = [
    ((6, 2, 12, 10), 500, 4, "NCHW", chunked.Plan(samples=2, rows=12, bands=1), False),
    ((7, 12, 10, 1), 360, 3, "NHWC", chunked.Plan(samples=3, rows=12, bands=1), True),  # last chunk moved back
    ((3, 12, 10, 2), 100, 4, "NHWC", chunked.Plan(samples=0, rows=12, bands=1), False),  # a plane per step
    ((2, 2, 24, 10), 100, 4, "NCHW", chunked.Plan(samples=0, rows=10, bands=3), True),  # bands of rows
    ((2, 23, 10, 2), 100, 5, "NHWC", chunked.Plan(samples=0, rows=10, bands=3), False),  # prime height
    ((1, 1, 37, 9), 60, 2, "NCHW", chunked.Plan(samples=0, rows=6, bands=7), True),  # an even window
]


@pytest.mark.parametrize("shape, chunk, window_size, data_format, walk, ignore_nans", WALKS)
def test_chunk_walks_compute_the_definition(small_chunks, shape, chunk, window_size, data_format, walk, ignore_nans):
    """Every way of walking a batch gives the float64 definition's numbers (and NaN
    footprints, which cross band borders)."""
    p, t = structured_pair(shape, seed=3)
    if ignore_nans:  # at the image's first row, and in the last plane's last row
        p.flat[1] = np.nan
        p.flat[-1] = np.nan
    small_chunks(chunk)
    config = make_config(None, window_size, data_format=data_format, ignore_nans=ignore_nans)
    nchw = shape if data_format == "NCHW" else (shape[0], shape[3], shape[1], shape[2])
    assert chunked.plan(nchw, config) == walk
    m = jax.jit(chunked.scc_map, static_argnums=(2, 3))(p, t, config, "slices")
    expected = ref.scc_map(p, t, window_size=window_size, data_format=data_format, ignore_nans=ignore_nans)
    np.testing.assert_array_equal(np.isnan(m), np.isnan(expected))
    np.testing.assert_allclose(m, expected, atol=1e-5, rtol=0, equal_nan=True)
    scores, grads, counted = jax.jit(chunked.scores, static_argnums=(2, 3, 4))(p, t, config, "slices", (True, True))
    np.testing.assert_allclose(scores, ref.scores_of_map(expected, ignore_nans), atol=1e-6, rtol=0)
    # The gradients summed over chunks, bands and their overlapping halos: those
    # of the whole planes at once (the rule itself is checked against float64
    # autodiff in tests/test_gradients.py).
    _, whole_grads, whole_counted = jax.jit(whole.scores, static_argnums=(2, 3, 4))(p, t, config, "slices", (True, True))
    np.testing.assert_array_equal(counted, whole_counted)
    for g, expected_g in zip(grads, whole_grads):
        np.testing.assert_allclose(g, expected_g, atol=1e-6 * float(np.abs(expected_g).max()), rtol=0)


def test_band_walk_keeps_nan_local_to_its_sample(small_chunks):
    small_chunks(100)
    p, t = structured_pair((3, 2, 24, 10), seed=4)
    p[1, 1, 5, 5] = np.nan
    s = np.asarray(jax_scc.spatial_correlation_coefficient(p, t, reduction="none", window_size=4))
    assert np.isnan(s[1]) and np.all(np.isfinite(s[[0, 2]]))


def _whole_and_walk_case():
    p, t = structured_pair((3, 20, 18, 2), seed=4)
    p.flat[5] = np.nan
    config = make_config(None, 5, data_format="NHWC", ignore_nans=True)
    return p, t, config


def _map_and_scores(module, pairing, **options):
    p, t, config = _whole_and_walk_case()
    return jax.jit(
        lambda p, t: (module.scc_map(p, t, config, pairing, **options), module.scores(p, t, config, pairing, **options)[0])
    )(p, t)


_walk_result = functools.cache(lambda: _map_and_scores(chunked, "slices"))  # once for both pairings


@pytest.mark.parametrize(
    "pairing, options",
    [("slices", {}), ("direct", {}), ("direct", {"borders": "padded", "window": "two_pass"})],
    ids=["slices", "direct-gpu", "direct-tpu"],
)
def test_whole_graph_strategy_gives_the_walks_numbers(pairing, options):
    """The one-graph strategy (what runs on GPU/TPU), on CPU, with the pairings
    meant for it (and GPU's and TPU's forms of direct): the map and the scores
    agree with the chunk walk's."""
    (m, s), (m_walk, s_walk) = _map_and_scores(whole, pairing, **options), _walk_result()
    np.testing.assert_allclose(m, m_walk, atol=1e-5, rtol=0, equal_nan=True)
    np.testing.assert_allclose(s, s_walk, atol=1e-6, rtol=0)


@pytest.mark.parametrize("pairing, window_size", [("slices", 3), ("direct", 3), ("direct", 8)])
def test_whole_graph_strategy_derivatives(pairing, window_size):
    """The one-graph strategy's derivatives (scores' gradients, the map's
    tangent) agree with the chunk walk's: the band definition's autodiff
    (slices), and the rule written from the definition (direct)."""
    p, t = structured_pair((3, 20, 18, 2), seed=4)
    config = make_config(None, window_size, data_format="NHWC")
    dp, dt = np.random.default_rng(1).normal(size=(2,) + p.shape).astype(np.float32)

    def run(module, pairing):
        def both(p, t, dp, dt):
            _, dm = module.scc_map(p, t, config, pairing, tangents=(dp, dt))
            return dm, module.scores(p, t, config, pairing, gradients=(True, True))[1]

        return jax.tree.leaves(jax.jit(both)(p, t, dp, dt))

    for name, g, w in zip(("map tangent", "gradient in preds", "gradient in target"), run(whole, pairing), run(chunked, "slices")):
        scale = float(np.nanmax(np.abs(w)))
        np.testing.assert_allclose(g, w, atol=1e-5 * scale, rtol=0, equal_nan=True, err_msg=name)


def test_accelerator_formulation_is_exact_on_quantized_photographs():
    """The two-pass formulation (GPU/TPU "direct"), run here on CPU: within
    1e-5 of the float64 definition at every map pixel and 1e-6 in the mean, on
    quantized photographs against their originals (flat regions and
    symmetric edges: where a float32 high-pass or window leaves residues)."""
    cases = [(quantize(photo(name, 128)), photo(name, 128).astype(np.float32)) for name in ("camera", "brick")]
    p = np.stack([a for a, _ in cases])[:, None]
    t = np.stack([b for _, b in cases])[:, None]
    for w, options in ((2, {}), (3, {}), (8, {}), (8, {"borders": "padded", "window": "two_pass"})):
        config = make_config(None, w)

        def run(p, t):
            return whole.scc_map(p, t, config, "direct", **options), whole.scores(p, t, config, "direct", **options)[0]

        m, s = jax.jit(run)(p, t)
        expected = ref.scc_map(p, t, window_size=w)
        assert np.abs(np.asarray(m) - expected).max() <= 1e-5, (w, options)
        np.testing.assert_allclose(s, expected.mean(axis=(1, 2, 3)), atol=1e-6, rtol=0, err_msg=str((w, options)))


@pytest.fixture
def small_tiles(monkeypatch):
    """Makes the TPU kernels cut small images into many tiles (8 x 128), so
    that tile borders in both directions are crossed."""
    monkeypatch.setattr(kernel, "TILE", (8, 128))


def test_tpu_kernel_computes_the_definition(small_tiles):
    """The Pallas kernel (TPU's forward), run by Pallas's interpreter on CPU:
    within 1e-5 of the float64 definition at every map pixel and 1e-6 in the
    mean, on quantized photographs cut to sizes that are not whole tiles, at
    w = 2 and 8; and other filters (4 x 3; 2 x 2 and not zero-sum), w = 3 and 1, odd
    planes and a NaN (which spoils its footprint, as in the definition)."""
    cases = [(quantize(photo(name, 160)), photo(name, 160).astype(np.float32)) for name in ("camera", "brick")]
    p = np.stack([a for a, _ in cases])[:, None, :100, :150]
    t = np.stack([b for _, b in cases])[:, None, :100, :150]
    tall = [[-1.0, -1.0, -1.0], [-1.0, 10.0, -1.0], [-1.0, -1.0, -1.0], [-1.0, -2.0, -1.0]]  # 4 x 3, zero sum
    q, u = structured_pair((2, 3, 19, 133), seed=2)
    q[1, 2, 9, 70] = np.nan
    runs = [(p, t, None, w) for w in (2, 8)] + [(q, u, tall, 3), (q, u, [[1.0, 2.0], [3.0, -4.0]], 1)]
    for k, (a, b, hp_filter, w) in enumerate(runs):
        config = make_config(hp_filter, w)
        assert all(kernel.applies(config, a.shape, a.dtype, kernel.Job(o)) for o in ("map", "scores"))
        m = kernel.scc_map(a, b, config, interpret=True)
        expected = ref.scc_map(a, b, np.asarray(config.hp_filter), w)
        np.testing.assert_allclose(m, expected, atol=1e-5, rtol=0, equal_nan=True, err_msg=str(w))
        if k < 2:  # the scores' row sums (the same tiles)
            s = definition.scores(kernel.row_means(a, b, config, interpret=True))
            np.testing.assert_allclose(s, ref.scores_of_map(expected, False), atol=1e-6, rtol=0, err_msg=str(w))


def test_tpu_kernel_gradients_are_the_walks(small_tiles):
    """The kernel's gradients of each sample's map sum (TPU's loss path), by
    Pallas's interpreter: the chunk walk's to 1e-5 of the largest, in both
    inputs, across tile borders and image borders (where the reflection's
    transpose folds the gradient back), with 3 x 3, 2 x 2 and 1 x 3 filters;
    exactly 0 on flat images."""
    cases = [((1, 2, 20, 133), None, 8), ((1, 1, 9, 140), [[1.0, 2.0], [3.0, -4.0]], 2), ((1, 1, 16, 200), [[1.0, -2.0, 1.0]], 5)]
    for shape, hp_filter, w in cases:
        config = make_config(hp_filter, w)
        p, t = structured_pair(shape, seed=3)
        assert kernel.applies(config, shape, jnp.float32, kernel.Job("gradient", (True, True)))
        rows, grads = kernel.row_means_and_gradients(p, t, config, (True, True), interpret=True)
        scores, expected, _ = jax.jit(lambda p, t: chunked.scores(p, t, config, "slices", gradients=(True, True)))(p, t)
        np.testing.assert_allclose(definition.scores(rows), scores, atol=1e-6, rtol=0)
        for got, want in zip(grads, expected):
            np.testing.assert_allclose(got, want, atol=1e-5 * float(np.abs(want).max()), rtol=0, err_msg=str(w))
    flat = np.full(cases[0][0], 0.5, np.float32)
    _, grads = kernel.row_means_and_gradients(flat, flat, make_config(), (True, True), interpret=True)
    assert not np.any(np.asarray(grads))


def test_tpu_kernel_bands_give_the_planes_numbers(small_tiles, monkeypatch):
    """Planes beyond the VMEM budget run in bands of rows, each with the rows
    before and after it as blocks of their own (here a small budget forces
    bands of 32 rows, the last short, two of them at the bottom edge): the
    float64 definition's map, and the chunk walk's scores and gradients."""
    p, t = structured_pair((1, 1, 100, 130), seed=6)
    config = make_config()

    def in_bands(job):
        banded = kernel._Geometry(100, 130, config, job, band=32)
        monkeypatch.setattr(kernel, "vmem_budget", lambda: banded.vmem_bytes())
        g = kernel._Geometry(100, 130, config, job)
        assert (g.band, g.bands) == (32, 4) and len(g.bottom_bands()) >= 1, job

    expected = ref.scc_map(p, t)
    in_bands(kernel.Job("map"))
    np.testing.assert_allclose(kernel.scc_map(p, t, config, interpret=True), expected, atol=1e-5, rtol=0)
    in_bands(kernel.Job("gradient", (True, True)))
    rows, grads = kernel.row_means_and_gradients(p, t, config, (True, True), interpret=True)
    want_scores, want_grads, _ = jax.jit(lambda p, t: chunked.scores(p, t, config, "slices", gradients=(True, True)))(p, t)
    np.testing.assert_allclose(definition.scores(rows), want_scores, atol=1e-6, rtol=0)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, want, atol=1e-5 * float(np.abs(want).max()), rtol=0)


def test_tpu_strategy_runs_the_kernels_in_any_layout(monkeypatch):
    """TPU's ``auto`` strategy around the kernels (layouts, the scores from
    the row sums, the gradients back in the input's layout), here with the
    kernels interpreted, in their own tiles (two across): the chunk walk's
    numbers in NHWC."""
    call = kernel._call
    monkeypatch.setattr(kernel, "_call", lambda p, t, config, job, interpret: call(p, t, config, job, True))
    p, t = structured_pair((1, 40, 300, 2), seed=5)
    config = make_config(None, 4, data_format="NHWC")
    tpu = execution.strategy(config, "tpu")
    assert tpu.name == "kernel"
    m = jax.jit(lambda p, t: tpu.scc_map(p, t, config))(p, t)
    scores, grads, counted = jax.jit(lambda p, t: tpu.scores(p, t, config, gradients=(True, True)))(p, t)
    walk = jax.jit(lambda p, t: (chunked.scc_map(p, t, config, "direct"), chunked.scores(p, t, config, "direct", gradients=(True, True))))
    want_map, (want_scores, want_grads, want_counted) = walk(p, t)
    np.testing.assert_allclose(m, want_map, atol=1e-5, rtol=0)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(counted, want_counted)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, want, atol=1e-5 * float(np.abs(want).max()), rtol=0)


def test_tpu_kernel_covers_the_plain_forward_and_loss():
    """Where the kernel does not apply, TPU's ``auto`` runs the whole graph:
    masks, float64, windows over 8, planes narrower than 128 pixels or too
    wide for a band of rows, and gradients through filters that reflect more
    than one pixel."""
    config, shape = make_config(), (2, 3, 64, 128)
    scores, grad = kernel.Job("scores"), kernel.Job("gradient", (True, False))
    assert kernel.applies(config, shape, jnp.float32, scores) and kernel.applies(config, shape, jnp.float32, grad)
    assert not kernel.applies(config, (256, 3, 32, 32), jnp.float32, scores)  # narrower than a register
    assert not kernel.applies(make_config(ignore_nans=True), shape, jnp.float32, scores)
    assert not kernel.applies(make_config(ignore_flat=True), shape, jnp.float32, kernel.Job("map"))
    assert not kernel.applies(config, shape, jnp.float64, scores)
    assert not kernel.applies(make_config(window_size=9), shape, jnp.float32, grad)
    assert kernel.applies(config, (1, 1, 1024, 1024), jnp.float32, kernel.Job("map"))
    assert kernel.applies(config, (1, 1, 1024, 1024), jnp.float32, kernel.Job("gradient", (True, True)))
    assert kernel.applies(config, (1, 1, 8192, 8192), jnp.float32, grad)  # in bands of rows
    assert not kernel.applies(config, (1, 1, 64, 2**20), jnp.float32, scores)  # too wide for a band
    five = make_config(np.ones((5, 5)) - 25 * np.eye(5)[2:3].T @ np.eye(5)[2:3])
    assert kernel.applies(five, shape, jnp.float32, scores) and not kernel.applies(five, shape, jnp.float32, grad)


def test_window_rows_form_is_the_levels_form():
    """The window's "rows" form (each row's segments once: the TPU kernels')
    gives the "levels" form's numbers to the bit (the same operations per
    window, in another order of evaluation)."""
    p, t = (np.asarray(x, np.float32) for x in structured_pair((2, 1, 40, 50), seed=7))
    for w in (2, 3, 8):
        levels, rows = (jax.jit(lambda p, t, f=f: moments.window_2d(p, t, w, f))(p, t) for f in ("levels", "rows"))
        for a, b in zip(levels, rows):
            np.testing.assert_array_equal(a, b, err_msg=str(w))


@pytest.mark.parametrize("w", [3, 17])
def test_pairing_methods_agree_to_rounding_on_moments(w):
    """conv forms the same pairs as slices (each a single rounded operation);
    direct sums the same values in another order."""
    rng = np.random.default_rng(6)
    a = jnp.asarray(rng.normal(size=(2, 40, 37)).astype(np.float32))
    b = jnp.asarray(rng.normal(size=(2, 40, 37)).astype(np.float32))
    moments = jax.jit(local_moments, static_argnames=("w", "pairing"))
    expected = moments(a, b, w, pairing="slices")
    for pairing, tol in (("conv", 1e-6), ("direct", 4e-6))[: 2 if w < 8 else 1]:  # direct: O(w), small w
        for x, y in zip(expected, moments(a, b, w, pairing=pairing)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=tol, err_msg=pairing)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the chunk walk runs on CPU")
def test_fusion_barrier_computes_its_function_and_survives_compilation():
    """stage(fn, x) is fn(x) (gradient and vmap included), and XLA keeps it in
    the compiled walk, even where its operand's corner is a known zero (a
    padded operand): without it the high-pass is fused into every window
    tap (1.5x slower on batches of 512 x 512 planes)."""
    x = jnp.arange(6.0).reshape(2, 3) + 1
    fn = lambda v: jnp.pad(v * v, 1)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda v: stage(fn, v))(x)), np.asarray(fn(x)))
    np.testing.assert_array_equal(np.asarray(jax.grad(lambda v: stage(fn, v).sum())(x)), 2 * np.asarray(x))
    np.testing.assert_array_equal(np.asarray(jax.vmap(lambda v: stage(fn, v))(x)), np.asarray(jax.vmap(fn)(x)))
    padded = jax.jit(lambda v: stage(lambda u: u * 2, jnp.pad(v, 1)) + 1).lower(x).compile().as_text()
    assert "conditional(" in padded
    shape = jax.ShapeDtypeStruct((4, 1, 512, 512), jnp.float32)
    for fn in (jax_scc.spatial_correlation_coefficient, jax.grad(jax_scc.spatial_correlation_coefficient)):
        assert "conditional(" in jax.jit(fn).lower(shape, shape).compile().as_text()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the chunk walk runs on CPU")
def test_large_plane_needs_less_memory_than_its_input():
    """A 4096 x 4096 plane is walked in bands (high-pass included): XLA's
    temporaries stay below one input's bytes, for the map and the scores."""
    x = jax.ShapeDtypeStruct((1, 1, 4096, 4096), jnp.float32)
    for fn in (jax_scc.scc_map, jax_scc.spatial_correlation_coefficient):
        compiled = jax.jit(fn).lower(x, x).compile()
        assert compiled.memory_analysis().temp_size_in_bytes < x.size * 4
