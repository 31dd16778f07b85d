"""Float64 NumPy references of the remote-sensing SCCs, written from their
definitions (sharing no code with jax_scc):

* toolbox sCC (Vivone et al., the pansharpening toolbox's ``SCC.m``): per band,
  crop one pixel on every side; ``gy`` = correlation with
  ``[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]`` and ``gx`` with its transpose, zero
  padding, output of the cropped size (MATLAB ``imfilter`` defaults);
  ``F = sqrt(gy**2 + gx**2)``; score ``sum F G / (sqrt(sum F**2) sqrt(sum G**2))``
  over all pixels and bands (per band: over that band).
* Zhou's global SCC: the high-pass of each band (tests/reference.py's, the
  package's definition of the high-pass), then ``np.corrcoef`` of the two bands.
"""

import numpy as np

from reference import LAPLACIAN, _high_pass

SOBEL = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64)


def correlate_zero(img, kernel):
    """MATLAB ``imfilter(img, kernel)``: correlation, zero padding, same size."""
    kh, kw = kernel.shape
    padded = np.pad(img, ((kh // 2, kh // 2), (kw // 2, kw // 2)))
    h, w = img.shape
    return sum(kernel[a, b] * padded[a : a + h, b : b + w] for a in range(kh) for b in range(kw))


def sobel_magnitude(band):
    band = np.asarray(band, np.float64)[1:-1, 1:-1]
    return np.sqrt(correlate_zero(band, SOBEL) ** 2 + correlate_zero(band, SOBEL.T) ** 2)


def _ratio(num, a, b):
    den = np.sqrt(a) * np.sqrt(b)
    return 0.0 if den == 0 else num / den


def toolbox_scc(pred, target):
    """One sample ``(C, H, W)``: the pooled score and the per-band scores."""
    f = np.stack([sobel_magnitude(b) for b in pred])
    g = np.stack([sobel_magnitude(b) for b in target])
    pooled = _ratio(np.sum(f * g), np.sum(f * f), np.sum(g * g))
    bands = [_ratio(np.sum(a * b), np.sum(a * a), np.sum(b * b)) for a, b in zip(f, g)]
    return pooled, np.array(bands)


def toolbox_map(pred, target):
    """``sum_bands F G / (||F|| ||G||)`` of one sample, ``(H - 2, W - 2)``."""
    f = np.stack([sobel_magnitude(b) for b in pred])
    g = np.stack([sobel_magnitude(b) for b in target])
    return np.sum(f * g, axis=0) / np.sqrt(np.sum(f * f) * np.sum(g * g))


def zhou_scc(pred, target, hp_filter=LAPLACIAN):
    """One sample ``(C, H, W)``: the mean over bands and the per-band scores."""
    hp_filter = np.asarray(hp_filter, np.float64)
    bands = []
    for a, b in zip(pred, target):
        x = _high_pass(np.asarray(a, np.float64), hp_filter).ravel()
        y = _high_pass(np.asarray(b, np.float64), hp_filter).ravel()
        x, y = x - x.mean(), y - y.mean()
        bands.append(_ratio(np.sum(x * y), np.sum(x * x), np.sum(y * y)))
    return float(np.mean(bands)), np.array(bands)
