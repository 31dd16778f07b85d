"""Inputs from NumPy everywhere; torch tensors via .numpy() and via DLPack."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_scc
import reference as ref

SHAPE = (2, 2, 16, 16)


def _np_images(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(size=SHAPE)
    p = 0.7 * t + 0.3 * rng.uniform(size=SHAPE)
    return p.astype(dtype), t.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.uint8, np.int32])
def test_numpy_inputs_match_jax_inputs(dtype):
    p, t = _np_images(np.float64)
    if np.issubdtype(dtype, np.integer):
        p, t = np.round(p * 200), np.round(t * 200)
    p, t = p.astype(dtype), t.astype(dtype)
    for fn in (
        jax_scc.scc_map,
        jax_scc.spatial_correlation_coefficient,
        functools.partial(jax_scc.spatial_correlation_coefficient, reduction="none"),
        functools.partial(jax_scc.spatial_correlation_coefficient, ignore_nans=True),
    ):
        from_np = fn(p, t)
        from_jax = fn(jnp.asarray(p), jnp.asarray(t))
        assert isinstance(from_np, jax.Array) and from_np.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(from_np), np.asarray(from_jax))
    expected = ref.scc(p.astype(np.float64), t.astype(np.float64))
    got = float(jax_scc.spatial_correlation_coefficient(p, t))
    assert got == pytest.approx(expected, abs=2e-6)


def test_numpy_mixed_with_jax_and_read_only_and_non_contiguous():
    p, t = _np_images()
    p.setflags(write=False)
    nhwc_p = np.moveaxis(p, 1, -1)  # a non-contiguous view
    nhwc_t = jnp.moveaxis(jnp.asarray(t), 1, -1)
    got = jax_scc.spatial_correlation_coefficient(nhwc_p, nhwc_t, data_format="NHWC")
    expected = jax_scc.spatial_correlation_coefficient(p, t)
    np.testing.assert_allclose(float(got), float(expected), atol=1e-7, rtol=0)


def test_numpy_under_jit_and_vmap():
    p, t = _np_images()
    score = jax.jit(jax_scc.spatial_correlation_coefficient)(p, t)
    assert float(score) == pytest.approx(float(jax_scc.spatial_correlation_coefficient(p, t)))
    stacked = jax.vmap(jax_scc.spatial_correlation_coefficient)(np.stack([p, t]), np.stack([t, t]))
    assert stacked.shape == (2,) and float(stacked[1]) == 1.0


def test_numpy_in_clu_metric():
    pytest.importorskip("clu.metrics")
    from jax_scc.clu import SCC

    p, t = _np_images()
    state = SCC.from_model_output(p, t, mask=np.array([True, False]))
    expected = jax_scc.spatial_correlation_coefficient(p[:1], t[:1])
    np.testing.assert_allclose(float(state.compute()), float(expected), atol=1e-6, rtol=0)


class TestTorch:
    """Scoring torch tensors (the documented ways, README "Examples and interop")."""

    @pytest.fixture(autouse=True)
    def _torch(self):
        # Skips only these tests (not the NumPy ones) when torch is missing.
        self.torch = pytest.importorskip("torch")

    def _tensors(self):
        p, t = _np_images()
        return self.torch.from_numpy(p.copy()), self.torch.from_numpy(t.copy())

    def test_via_numpy(self):
        tp, tt = self._tensors()
        tp.requires_grad_(True)  # a model output: detach first
        got = jax_scc.spatial_correlation_coefficient(tp.detach().cpu().numpy(), tt.numpy())
        expected = jax_scc.spatial_correlation_coefficient(*_np_images())
        assert float(got) == float(expected)

    def test_via_dlpack_zero_copy(self):
        tp, tt = self._tensors()
        jp, jt = jax.dlpack.from_dlpack(tp), jax.dlpack.from_dlpack(tt)
        assert isinstance(jp, jax.Array) and jp.dtype == jnp.float32 and jp.shape == SHAPE
        got = jax_scc.scc_map(jp, jt)
        expected = jax_scc.scc_map(*_np_images())
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
        # and back to torch, also through DLPack
        back = self.torch.from_dlpack(got)
        assert tuple(back.shape) == SHAPE
        np.testing.assert_array_equal(back.numpy(), np.asarray(expected))

    def test_dlpack_of_integer_and_non_contiguous_tensors(self):
        tp, tt = self._tensors()
        u8p, u8t = (tp * 255).to(self.torch.uint8), (tt * 255).to(self.torch.uint8)
        got = jax_scc.spatial_correlation_coefficient(
            jax.dlpack.from_dlpack(u8p), jax.dlpack.from_dlpack(u8t)
        )
        expected = jax_scc.spatial_correlation_coefficient(u8p.numpy(), u8t.numpy())
        assert float(got) == float(expected)
        nhwc = jax.dlpack.from_dlpack(tp.permute(0, 2, 3, 1))  # a strided view
        got = jax_scc.spatial_correlation_coefficient(
            nhwc, tt.permute(0, 2, 3, 1).numpy(), data_format="NHWC"
        )
        np.testing.assert_allclose(
            float(got), float(jax_scc.spatial_correlation_coefficient(*_np_images())), atol=1e-7
        )

    def test_matches_torchmetrics_on_the_same_tensors(self):
        tm = pytest.importorskip("torchmetrics.functional.image")
        tp, tt = self._tensors()
        theirs = float(tm.spatial_correlation_coefficient(tp, tt))
        ours = float(jax_scc.spatial_correlation_coefficient(tp.numpy(), tt.numpy()))
        assert ours == pytest.approx(theirs, abs=1e-5)
