"""An independent float64 NumPy evaluation of the SCC definition.

Written from the definition in the README ("Conventions"), sharing no code with
jax_scc:

* ``hp(x) = 2 * conv2d(x, hp_filter)``: a true convolution (kernel flipped) of the
  input padded symmetric-reflect (``d c b a | a b c d``) by floor((k-1)/2) before
  and ceil((k-1)/2) after, per axis;
* a uniform ``w x w`` window with zero padding ceil((w-1)/2) before and
  floor((w-1)/2) after; ``var = E[x^2] - E[x]^2`` clipped at 0,
  ``cov = E[xy] - E[x]E[y]``, ``scc = cov / (sqrt(var_t) sqrt(var_p))``, 0 where
  that denominator is 0;
* score = mean over pixels and channels (per sample).

Options (NaN in the map marks pixels left out of the mean):

* ``ignore_nans``: a map pixel is left out when some input pixel of its
  footprint is NaN in preds or target (that channel). The footprint of a map
  pixel is every high-pass output inside its ``w x w`` window (zero padding is
  not data); the footprint of a high-pass output is the full ``kh x kw`` filter
  support on the symmetric-reflect padded input. Written as explicit loops over
  the offsets. Values at kept pixels: the map of the inputs with NaN read as 0.
* ``ignore_flat``: a map pixel is left out where the target's window variance is 0.
"""

import numpy as np

LAPLACIAN = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64)


def _high_pass(img, hp_filter):
    kh, kw = hp_filter.shape
    padded = np.pad(
        img,
        (((kh - 1) // 2, -(-(kh - 1) // 2)), ((kw - 1) // 2, -(-(kw - 1) // 2))),
        mode="symmetric",
    )
    flipped = hp_filter[::-1, ::-1]
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw))
    return 2.0 * np.einsum("ijab,ab->ij", windows, flipped)


def _window_mean(img, w):
    before, after = -(-(w - 1) // 2), (w - 1) // 2
    padded = np.pad(img, ((before, after), (before, after)))
    return np.lib.stride_tricks.sliding_window_view(padded, (w, w)).mean(axis=(-2, -1))


def _missing_footprint(missing, hp_shape, window_size):
    """Boolean (H, W): map pixels whose footprint holds a missing input pixel."""
    h, w = missing.shape
    kh, kw = hp_shape
    padded = np.pad(missing, (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)), mode="symmetric")
    hp_bad = np.zeros((h, w), bool)
    for a in range(kh):
        for b in range(kw):
            hp_bad |= padded[a : a + h, b : b + w]
    before, after = window_size // 2, (window_size - 1) // 2
    padded = np.pad(hp_bad, ((before, after), (before, after)), constant_values=False)
    bad = np.zeros((h, w), bool)
    for a in range(window_size):
        for b in range(window_size):
            bad |= padded[a : a + h, b : b + w]
    return bad


def scc_map_2d(preds, target, hp_filter=LAPLACIAN, window_size=8, ignore_nans=False, ignore_flat=False):
    """SCC map of one channel, float64, shape (H, W); NaN where left out."""
    hp_filter = np.asarray(hp_filter, np.float64)
    preds, target = np.asarray(preds, np.float64), np.asarray(target, np.float64)
    missing = np.isnan(preds) | np.isnan(target)
    if ignore_nans:
        preds, target = np.where(missing, 0.0, preds), np.where(missing, 0.0, target)
    p, t = _high_pass(preds, hp_filter), _high_pass(target, hp_filter)
    mp, mt = _window_mean(p, window_size), _window_mean(t, window_size)
    var_p = np.maximum(_window_mean(p * p, window_size) - mp * mp, 0.0)
    var_t = np.maximum(_window_mean(t * t, window_size) - mt * mt, 0.0)
    cov = _window_mean(p * t, window_size) - mp * mt
    den = np.sqrt(var_t) * np.sqrt(var_p)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den == 0, 0.0, cov / np.where(den == 0, 1.0, den))
    if ignore_nans:
        out[_missing_footprint(missing, hp_filter.shape, window_size)] = np.nan
    if ignore_flat:
        out[var_t == 0] = np.nan
    return out


def _as_nchw(x, data_format):
    x = np.asarray(x, np.float64)
    if x.ndim == 3:
        return x[:, None]
    return x.transpose(0, 3, 1, 2) if data_format == "NHWC" else x


def scc_map(preds, target, hp_filter=LAPLACIAN, window_size=8, data_format="NCHW", **options):
    """SCC map of a batch, float64, same shape as the input; NaN where left out."""
    ndim = np.ndim(preds)
    p, t = _as_nchw(preds, data_format), _as_nchw(target, data_format)
    out = np.stack(
        [
            np.stack([scc_map_2d(a, b, hp_filter, window_size, **options) for a, b in zip(ps, ts)])
            for ps, ts in zip(p, t)
        ]
    )
    if ndim == 3:
        return out[:, 0]
    return out.transpose(0, 2, 3, 1) if data_format == "NHWC" else out


def scores_of_map(m, masked):
    """Per-sample mean of a reference map; with ``masked``, of its non-NaN pixels
    (NaN if none), else NaN propagates."""
    m = m.reshape(m.shape[0], -1)
    if not masked:
        return m.mean(axis=1)
    return np.array([row[~np.isnan(row)].mean() if (~np.isnan(row)).any() else np.nan for row in m])


def scc_per_sample(preds, target, hp_filter=LAPLACIAN, window_size=8, data_format="NCHW", **options):
    """Per-sample mean of the map pixels that count, float64, shape (N,); NaN if none."""
    m = scc_map(preds, target, hp_filter, window_size, data_format, **options)
    return scores_of_map(m, options.get("ignore_nans") or options.get("ignore_flat"))


def scc(preds, target, hp_filter=LAPLACIAN, window_size=8, data_format="NCHW", **options):
    return float(scc_per_sample(preds, target, hp_filter, window_size, data_format, **options).mean())


def scc_map_jax(preds, target, hp_filter=LAPLACIAN, window_size=8):
    """The definition in jax.numpy, the map of (N, C, H, W) batches: a
    differentiable reference for gradients. Evaluate it under ``jax.enable_x64``
    on float64 inputs (it shares no code with jax_scc either). Each window's
    variances and covariance are taken from its w*w values, centred on their
    mean (two passes), so that float64 keeps its digits in near-flat windows."""
    import jax.numpy as jnp

    hp = jnp.asarray(np.asarray(hp_filter, np.float64)[::-1, ::-1])
    kh, kw = hp.shape
    w = window_size
    h, wd = preds.shape[-2:]

    def high_pass(x):
        pad = ((0, 0), (0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
        xp = jnp.pad(x, pad, mode="symmetric")
        return 2 * sum(hp[a, b] * xp[..., a : a + h, b : b + wd] for a in range(kh) for b in range(kw))

    def window_values(x):  # (w*w, N, C, H, W): every window's values, zero padded
        before, after = w // 2, (w - 1) // 2
        xp = jnp.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))
        rows = np.arange(h)[:, None] + np.arange(w)[None, :]  # (H, w): the rows of each window
        cols = np.arange(wd)[:, None] + np.arange(w)[None, :]
        v = xp[..., rows[:, :, None, None], cols[None, None, :, :]]  # (N, C, H, w, W, w), one gather
        return jnp.moveaxis(v, (3, 5), (0, 1)).reshape((w * w,) + x.shape)

    p, t = window_values(high_pass(preds)), window_values(high_pass(target))
    dp, dt = p - jnp.mean(p, axis=0, keepdims=True), t - jnp.mean(t, axis=0, keepdims=True)
    var_p, var_t, cov = jnp.mean(dp * dp, axis=0), jnp.mean(dt * dt, axis=0), jnp.mean(dp * dt, axis=0)
    ok = (var_p > 0) & (var_t > 0)  # masked before sqrt and division: finite gradients
    den = jnp.sqrt(jnp.where(ok, var_p, 1)) * jnp.sqrt(jnp.where(ok, var_t, 1))
    return jnp.where(ok, cov / den, 0)


def scc_scores_jax(preds, target, hp_filter=LAPLACIAN, window_size=8):
    """Per-sample scores of :func:`scc_map_jax`."""
    import jax.numpy as jnp

    m = scc_map_jax(preds, target, hp_filter, window_size)
    return jnp.mean(m.reshape(m.shape[0], -1), axis=1)
