"""The baseline a user writes instead of using jax_scc: torchmetrics 1.9's
``spatial_correlation_coefficient`` ported step by step to ``jax.numpy``.

Symmetric-reflect padding and a depthwise ``lax.conv_general_dilated`` for the
high pass ``2 * conv2d(x, flipped filter)``, uniform window means by a second
depthwise convolution (zero padded, ceil((w-1)/2) before and floor after), raw
moments ``E[xy] - E[x]E[y]``, variances clipped at 0, 0 where the denominator
is 0. No tricks, differentiated by plain ``jax.grad``: the benchmarks' "naive
JAX" rows. Its gradient is NaN where a window is flat (``sqrt`` at 0), as a
straight port's is; the benchmarks' inputs have no flat windows.
"""

import jax.numpy as jnp
from jax import lax

LAPLACIAN = ((-1.0, -1.0, -1.0), (-1.0, 8.0, -1.0), (-1.0, -1.0, -1.0))


def _depthwise(x, kernel, padding):
    """Cross-correlation of every channel of NCHW ``x`` with one 2-D kernel."""
    channels = x.shape[1]
    k = jnp.broadcast_to(kernel, (channels, 1) + kernel.shape).astype(x.dtype)
    return lax.conv_general_dilated(x, k, (1, 1), padding, feature_group_count=channels)


def scc_map(preds, target, hp_filter=LAPLACIAN, window_size=8):
    """Per-pixel SCC map, (N, C, H, W) float32 -> (N, C, H, W)."""
    hp = jnp.asarray(hp_filter, jnp.float32)
    kh, kw = hp.shape
    pad = ((0, 0), (0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
    high = lambda x: 2.0 * _depthwise(jnp.pad(x, pad, mode="symmetric"), hp[::-1, ::-1], "VALID")  # noqa: E731
    p, t = high(preds.astype(jnp.float32)), high(target.astype(jnp.float32))
    w = window_size
    box = jnp.ones((w, w), jnp.float32) / w**2
    mean = lambda x: _depthwise(x, box, [(w // 2, (w - 1) // 2)] * 2)  # noqa: E731
    mu_p, mu_t = mean(p), mean(t)
    var_p = jnp.maximum(mean(p * p) - mu_p**2, 0.0)
    var_t = jnp.maximum(mean(t * t) - mu_t**2, 0.0)
    cov = mean(t * p) - mu_t * mu_p
    den = jnp.sqrt(var_t) * jnp.sqrt(var_p)
    return jnp.where(den == 0, 0.0, cov / jnp.where(den == 0, 1.0, den))


def spatial_correlation_coefficient(preds, target, hp_filter=LAPLACIAN, window_size=8, reduction="mean"):
    """Mean SCC: a scalar (``"mean"``) or one score per sample (``"none"``)."""
    m = scc_map(preds, target, hp_filter, window_size)
    return jnp.mean(m) if reduction == "mean" else jnp.mean(m, axis=(1, 2, 3))


def check_agrees(preds, target, window_size=8, tol=1e-4):
    """Raise unless the naive mean SCC is within ``tol`` of jax_scc's on these inputs."""
    import jax_scc

    naive = float(spatial_correlation_coefficient(preds, target, window_size=window_size))
    ours = float(jax_scc.spatial_correlation_coefficient(preds, target, window_size=window_size))
    if not abs(naive - ours) <= tol:
        raise RuntimeError(f"naive JAX SCC {naive!r} differs from jax_scc's {ours!r} by more than {tol}")
    return naive, ours
