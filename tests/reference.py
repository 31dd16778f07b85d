"""An independent float64 NumPy evaluation of the SCC definition.

Written from the definition in DEVELOPERS.md, sharing no code with jax_scc:

* ``hp(x) = 2 * conv2d(x, hp_filter)``: a true convolution (kernel flipped) of the
  input padded symmetric-reflect (``d c b a | a b c d``) by floor((k-1)/2) before
  and ceil((k-1)/2) after, per axis;
* a uniform ``w x w`` window with zero padding ceil((w-1)/2) before and
  floor((w-1)/2) after; ``var = E[x^2] - E[x]^2`` clipped at 0,
  ``cov = E[xy] - E[x]E[y]``, ``scc = cov / (sqrt(var_t) sqrt(var_p))``, 0 where
  that denominator is 0;
* score = mean over pixels and channels (per sample).
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


def scc_map_2d(preds, target, hp_filter=LAPLACIAN, window_size=8):
    """SCC map of one channel, float64, shape (H, W)."""
    p = _high_pass(np.asarray(preds, np.float64), np.asarray(hp_filter, np.float64))
    t = _high_pass(np.asarray(target, np.float64), np.asarray(hp_filter, np.float64))
    mp, mt = _window_mean(p, window_size), _window_mean(t, window_size)
    var_p = np.maximum(_window_mean(p * p, window_size) - mp * mp, 0.0)
    var_t = np.maximum(_window_mean(t * t, window_size) - mt * mt, 0.0)
    cov = _window_mean(p * t, window_size) - mp * mt
    den = np.sqrt(var_t) * np.sqrt(var_p)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0, 0.0, cov / np.where(den == 0, 1.0, den))


def scc_map(preds, target, hp_filter=LAPLACIAN, window_size=8, data_format="NCHW"):
    """SCC map of a batch, float64, same shape as the input."""
    preds, target = np.asarray(preds), np.asarray(target)
    if preds.ndim == 3:
        preds, target = preds[:, None], target[:, None]
        squeeze = True
    else:
        squeeze = False
        if data_format == "NHWC":
            preds, target = preds.transpose(0, 3, 1, 2), target.transpose(0, 3, 1, 2)
    out = np.stack(
        [
            np.stack([scc_map_2d(p, t, hp_filter, window_size) for p, t in zip(ps, ts)])
            for ps, ts in zip(preds, target)
        ]
    )
    if squeeze:
        return out[:, 0]
    if data_format == "NHWC":
        return out.transpose(0, 2, 3, 1)
    return out


def scc_per_sample(preds, target, hp_filter=LAPLACIAN, window_size=8, data_format="NCHW"):
    m = scc_map(preds, target, hp_filter, window_size, data_format)
    return m.reshape(m.shape[0], -1).mean(axis=1)


def scc(preds, target, hp_filter=LAPLACIAN, window_size=8, data_format="NCHW"):
    return float(scc_per_sample(preds, target, hp_filter, window_size, data_format).mean())
