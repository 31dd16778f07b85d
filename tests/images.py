"""Test images: the seed example and real photographs from scikit-image's data."""

import functools
import os
import tempfile
from pathlib import Path

import numpy as np

# The seed example's score: torchmetrics 1.9.0's SpatialCorrelationCoefficient on the
# seed inputs in float32 (as the seed example prints it), and the float64 evaluation
# of the definition on the same float32 inputs (tests/reference.py; torchmetrics'
# own per-channel code run on float64 tensors gives the same).
SEED_TORCHMETRICS_FLOAT32 = 0.14591339230537415
SEED_FLOAT64 = 0.14591339670798803


@functools.lru_cache(maxsize=None)
def seed_pair():
    """The seed example's (preds, target): float32, shape (1, 1, 512, 512).

    ``preds`` is the filtered back-projection of the Shepp-Logan phantom's
    sinogram, ``target`` the phantom (both as in torchmetrics' example). The
    Radon transforms take seconds, so the pair is kept in a file in the temporary
    folder, keyed by the scikit-image version, for the other test processes.
    """
    import skimage

    cache = Path(tempfile.gettempdir()) / f"jax_scc_seed_pair_skimage{skimage.__version__}.npz"
    try:
        with np.load(cache) as f:
            preds, target = f["preds"], f["target"]
    except (OSError, KeyError, ValueError):
        from skimage.data import shepp_logan_phantom
        from skimage.transform import iradon, radon, rescale

        phantom = rescale(shepp_logan_phantom(), scale=512 / 400)
        theta = np.linspace(0.0, 180.0, max(phantom.shape), endpoint=False)
        recon = iradon(radon(phantom, theta=theta), theta=theta, circle=True)
        preds = recon.astype(np.float32)[None, None]
        target = phantom.astype(np.float32)[None, None]
        partial = cache.with_suffix(f".{os.getpid()}.npz")
        np.savez(partial, preds=preds, target=target)
        os.replace(partial, cache)  # whole or not at all
    preds.setflags(write=False)
    target.setflags(write=False)
    return preds, target


@functools.lru_cache(maxsize=None)
def photo(name="camera", size=128):
    """A grey photograph from scikit-image as float64 in [0, 1], cropped to size x size."""
    from skimage import color, data

    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    else:
        img = img.astype(np.float64) / 255.0
    out = np.ascontiguousarray(img[:size, :size])
    out.setflags(write=False)
    return out


def quantize(img, levels=16):
    """Rounds [0, 1] values to ``levels`` grey levels, as float32 in [0, 1]."""
    return (np.round(np.clip(img, 0, 1) * (levels - 1)) / (levels - 1)).astype(np.float32)


def noisy(img, sigma=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(img + sigma * rng.standard_normal(img.shape), 0, 1)


def blurred(img, sigma=1.5):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img, sigma)


def structured_pair(shape, seed=0, noise=0.1, dtype=np.float32):
    """Random ``(preds, target)`` with flat regions and edges: the target holds 16
    grey levels (k/15), the prediction adds Gaussian noise."""
    rng = np.random.default_rng(seed)
    target = np.round(rng.uniform(size=shape) * 15) / 15
    preds = target + noise * rng.standard_normal(shape)
    return preds.astype(dtype), target.astype(dtype)
