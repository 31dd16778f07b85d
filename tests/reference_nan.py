"""Float64 NumPy reference for ``ignore_nans=True``, from the definition.

Shares no code with jax_scc. A map pixel is invalid when some input pixel of its
footprint is NaN in preds or target (per channel): the footprint of a map pixel
is every high-pass output inside its ``w x w`` window (zero padding is not data),
and the footprint of a high-pass output is the full ``kh x kw`` filter support on
the symmetric-reflect padded input. Values at valid pixels are the reference map
of the inputs with NaN read as 0 (those zeros lie outside every valid footprint);
a sample's score is the mean of its valid map pixels over pixels and channels,
NaN when there is none.
"""

import numpy as np

import reference


def invalid_2d(missing, hp_shape, window_size):
    """Boolean (H, W): map pixels whose footprint holds a missing input pixel.

    Written as explicit loops over the footprint offsets (no dilation primitive).
    """
    missing = np.asarray(missing, bool)
    h, w = missing.shape
    kh, kw = hp_shape
    padded = np.pad(
        missing,
        (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)),
        mode="symmetric",
    )
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


def _as_nchw(x, data_format):
    x = np.asarray(x, np.float64)
    if x.ndim == 3:
        return x[:, None]
    if data_format == "NHWC":
        return x.transpose(0, 3, 1, 2)
    return x


def _back(m, ndim, data_format):
    if ndim == 3:
        return m[:, 0]
    if data_format == "NHWC":
        return m.transpose(0, 2, 3, 1)
    return m


def scc_map(preds, target, hp_filter=reference.LAPLACIAN, window_size=8, data_format="NCHW"):
    """Reference map with NaN at the invalid pixels, float64, shape of the input."""
    ndim = np.ndim(preds)
    p, t = _as_nchw(preds, data_format), _as_nchw(target, data_format)
    hp_shape = np.asarray(hp_filter).shape
    missing = np.isnan(p) | np.isnan(t)
    out = np.empty(p.shape)
    for n in range(p.shape[0]):
        for c in range(p.shape[1]):
            m = reference.scc_map_2d(
                np.where(missing[n, c], 0.0, p[n, c]),
                np.where(missing[n, c], 0.0, t[n, c]),
                hp_filter,
                window_size,
            )
            out[n, c] = np.where(invalid_2d(missing[n, c], hp_shape, window_size), np.nan, m)
    return _back(out, ndim, data_format)


def scc_per_sample(
    preds, target, hp_filter=reference.LAPLACIAN, window_size=8, data_format="NCHW"
):
    """Per-sample mean of the valid map pixels, float64, shape (N,)."""
    m = scc_map(preds, target, hp_filter, window_size, data_format)
    m = m.reshape(m.shape[0], -1)
    out = []
    for row in m:
        valid = row[~np.isnan(row)]
        out.append(valid.mean() if valid.size else np.nan)
    return np.asarray(out)
