"""Test images: the seed example and real photographs from scikit-image's data."""

import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def seed_pair():
    """The seed example's (preds, target): float32, shape (1, 1, 512, 512).

    ``preds`` is the filtered back-projection of the Shepp-Logan phantom's
    sinogram, ``target`` the phantom (both as in torchmetrics' example).
    """
    from skimage.data import shepp_logan_phantom
    from skimage.transform import iradon, radon, rescale

    phantom = rescale(shepp_logan_phantom(), scale=512 / 400)
    theta = np.linspace(0.0, 180.0, max(phantom.shape), endpoint=False)
    recon = iradon(radon(phantom, theta=theta), theta=theta, circle=True)
    preds = recon.astype(np.float32)[None, None]
    target = phantom.astype(np.float32)[None, None]
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
