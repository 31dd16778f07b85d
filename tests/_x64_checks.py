"""Run in a subprocess by test_x64.py: JAX_ENABLE_X64 must be set before JAX starts."""

import sys

import jax
import jax.numpy as jnp
import numpy as np

import jax_scc
import reference as ref

assert jax.config.read("jax_enable_x64"), "run with JAX_ENABLE_X64=1"

rng = np.random.default_rng(0)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    print(("ok   " if cond else "FAIL ") + what)


# float64 stays float64 and equals the float64 reference to ~1e-12.
p = rng.uniform(size=(2, 3, 20, 24))
t = 0.5 * p + 0.5 * rng.uniform(size=p.shape)
m = jax_scc.scc_map(p, t, window_size=5)
check(m.dtype == jnp.float64, f"float64 map dtype ({m.dtype})")
check(np.abs(np.asarray(m) - ref.scc_map(p, t, window_size=5)).max() < 1e-12, "float64 map vs reference")
s = jax_scc.spatial_correlation_coefficient(p, t)
check(s.dtype == jnp.float64, "float64 score dtype")
check(jax_scc.spatial_correlation_coefficient(p.astype(np.int32), t.astype(np.int32)).dtype == jnp.float32,
      "integers are scored in float32 with x64 on")

# sewar 0.4.10 (float64, HxWxC, correlates: symmetric filters only) to 1e-9.
from sewar.full_ref import scc as sewar_scc

HP5 = [[0, 0, -1, 0, 0], [0, -1, -2, -1, 0], [-1, -2, 16, -2, -1], [0, -1, -2, -1, 0], [0, 0, -1, 0, 0]]
LAP4 = [[0, -1, 0], [-1, 4, -1], [0, -1, 0]]
img_t = rng.uniform(size=(37, 41, 3))
img_p = np.clip(img_t + 0.2 * rng.standard_normal(img_t.shape), 0, 1)
for hp, windows in ((None, (8,)), (HP5, (5,))):
    for ws in windows:
        kwargs = {} if hp is None else {"win": hp}
        expected = sewar_scc(img_t, img_p, ws=ws, **kwargs)
        ours = float(jax_scc.spatial_correlation_coefficient(img_p[None], img_t[None], hp_filter=hp, window_size=ws, data_format="NHWC"))
        check(abs(ours - expected) < 1e-9, f"sewar hp={'default' if hp is None else len(hp)} ws={ws}: {ours!r} vs {expected!r}")

# ignore_nans in float64: the reference's footprint and values to ~1e-12.
p = rng.uniform(size=(3, 2, 16, 16))
t = rng.uniform(size=(3, 2, 16, 16))
p[0, 0, 3:5, 0:2] = np.nan
t[1, 1, -1, 4] = np.nan
t[2] = np.nan
s = jax_scc.spatial_correlation_coefficient(p, t, reduction="none", ignore_nans=True)
expected = ref.scc_per_sample(p, t, ignore_nans=True)
check(s.dtype == jnp.float64 and np.allclose(np.asarray(s), expected, atol=1e-12, rtol=0, equal_nan=True),
      "float64 ignore_nans scores vs reference")

# float32 inputs (computed in float32 with x64 on), compiled as users compile:
# the seed score, and photographs' maps and means against the float64 definition.
from images import SEED_FLOAT64, photo, quantize, seed_pair

preds, target = seed_pair()
check(abs(float(jax_scc.spatial_correlation_coefficient(preds, target)) - SEED_FLOAT64) < 1e-7, "float32 seed score")
imgs = [photo(name, 96) for name in ("camera", "text")]
p32 = np.stack([quantize(img) for img in imgs])[:, None].astype(np.float32)
t32 = np.stack(imgs)[:, None].astype(np.float32)
for ws in (2, 5):  # windows formed directly; the seed above covers the tree (w=8)
    m = jax_scc.scc_map(p32, t32, window_size=ws)
    expected = ref.scc_map(p32.astype(np.float64), t32.astype(np.float64), window_size=ws)
    check(m.dtype == jnp.float32 and np.abs(np.asarray(m, np.float64) - expected).max() < 1e-5, f"float32 map w={ws}")
    check(abs(float(np.asarray(m, np.float64).mean()) - expected.mean()) < 1e-6, f"float32 mean w={ws}")

# Gradients in float64: analytic vs numerical.
from jax.test_util import check_grads

p = jnp.asarray(rng.uniform(size=(2, 1, 8, 8)))
t = jnp.asarray(rng.uniform(size=(2, 1, 8, 8)))
for what, f, args, order, modes in [
    ("scores, both inputs", jax.jit(lambda a, b: jax_scc.spatial_correlation_coefficient(a, b, window_size=4)),
     (p, t), 1, ["rev"]),
    ("scores, second derivatives (the rule is differentiable)",
     jax.jit(lambda a: jax_scc.spatial_correlation_coefficient(a, t[:1], window_size=4)), (p[:1],), 2, ["fwd"]),
]:
    try:
        check_grads(f, args, order=order, modes=modes)
        check(True, f"check_grads order {order} ({', '.join(modes)}): {what}")
    except AssertionError as e:
        check(False, f"check_grads {what}: {e}")

sys.exit(1 if failures else 0)
