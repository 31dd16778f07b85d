"""SCC as a differentiable training loss: a small flax.nnx denoiser trained with optax.

Trains a 3-layer residual CNN (an ``nnx.Module`` of ``nnx.Conv`` layers, with
``optax.adam`` through ``nnx.Optimizer``) to remove Gaussian noise from 32x32
patches of scikit-image's bundled photographs, with the loss
``1 - SCC(denoised, clean)`` plus a small MSE term that anchors the intensities
(SCC ignores brightness offsets). Every few steps it scores held-out patches,
cut from photographs the model never trains on, and prints the progress. Then it
measures what the SCC term costs: the jitted training step with and without it
(same model, same batch), and finally saves a plot of the held-out SCC over the
steps next to one held-out patch (noisy / denoised / clean).

Images are channels-last, ``(N, H, W, 1)`` float32, as ``nnx.Conv`` expects;
``data_format="NHWC"`` tells ``jax_scc`` so.

Run:  python examples/training_loss.py [--steps 300] [--out training_loss.png]
      [--timing-repeats 11]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import List, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jax_scc

TRAIN_IMAGES = ("camera", "astronaut", "coffee", "chelsea", "brick", "grass", "coins")
HELD_OUT_IMAGES = ("moon", "text", "gravel", "page")
PATCH = 32
NOISE = 0.1
MSE_WEIGHT = 1.0
LEARNING_RATE = 4e-3


def load_gray(name: str) -> np.ndarray:
    """A bundled scikit-image photograph as float32 grey levels in [0, 1]."""
    from skimage import color, data

    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    else:
        img = img.astype(np.float64) / 255.0
    return img.astype(np.float32)


def random_patches(images: List[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``PATCH x PATCH`` crops, shape ``(n, PATCH, PATCH, 1)``."""
    out = np.empty((n, PATCH, PATCH, 1), np.float32)
    for i in range(n):
        img = images[rng.integers(len(images))]
        y = rng.integers(img.shape[0] - PATCH + 1)
        x = rng.integers(img.shape[1] - PATCH + 1)
        out[i, ..., 0] = img[y : y + PATCH, x : x + PATCH]
    return out


class Denoiser(nnx.Module):
    """Residual CNN ``noisy - net(noisy)``: 3x3 convolutions 1 -> width -> width -> 1.

    The last layer starts at zero, so the untrained model returns its input:
    the initial held-out score is that of the noisy images themselves.
    """

    def __init__(self, width: int = 16, *, rngs: nnx.Rngs):
        he = nnx.initializers.he_normal()
        self.conv1 = nnx.Conv(1, width, (3, 3), kernel_init=he, rngs=rngs)
        self.conv2 = nnx.Conv(width, width, (3, 3), kernel_init=he, rngs=rngs)
        self.conv3 = nnx.Conv(width, 1, (3, 3), kernel_init=nnx.initializers.zeros, rngs=rngs)

    def __call__(self, noisy: jax.Array) -> jax.Array:
        """``(N, H, W, 1)`` float32 in, the same shape out."""
        h = nnx.relu(self.conv1(noisy))
        h = nnx.relu(self.conv2(h))
        return noisy - self.conv3(h)


def scc(denoised: jax.Array, clean: jax.Array) -> jax.Array:
    """Mean SCC (window 8, the Laplacian high-pass) of channels-last batches, a scalar."""
    return jax_scc.spatial_correlation_coefficient(denoised, clean, data_format="NHWC")


def loss_fn(model: Denoiser, noisy: jax.Array, clean: jax.Array, with_scc: bool = True) -> jax.Array:
    """``1 - SCC`` plus a small MSE term (the MSE term alone if not ``with_scc``)."""
    out = model(noisy)
    loss = MSE_WEIGHT * jnp.mean((out - clean) ** 2)
    if with_scc:  # static: the step without it never computes SCC
        loss = loss + (1.0 - scc(out, clean))
    return loss


@nnx.jit(static_argnames="with_scc")
def train_step(model: Denoiser, optimizer: nnx.Optimizer, noisy: jax.Array, clean: jax.Array,
               *, with_scc: bool) -> jax.Array:
    """One jitted step: loss and gradients in the parameters, an Adam update in place.

    ``with_scc`` is static and has no default: a call that left it out would be
    a second cache entry (a second compilation) of the same program.
    """
    loss, grads = nnx.value_and_grad(loss_fn)(model, noisy, clean, with_scc)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def held_out_scc(model: Denoiser, noisy: jax.Array, clean: jax.Array) -> jax.Array:
    return scc(model(noisy), clean)


class StepTimes(NamedTuple):
    """Median seconds of one training step with and without the SCC term."""

    with_scc: float
    without_scc: float


def time_steps(model: Denoiser, optimizer: nnx.Optimizer, noisy: jax.Array, clean: jax.Array,
               repeats: int = 11, steps: int = 5) -> StepTimes:
    """Times ``train_step`` with and without the SCC term on one batch.

    Each variant trains its own copy of ``model`` and ``optimizer`` (the
    originals are untouched). Both are compiled and run once first; then the
    two alternate, ``repeats`` times each, every time over ``steps`` steps that
    end with ``block_until_ready``; the medians of the per-step times are returned.
    """
    copies = {flag: (nnx.clone(model), nnx.clone(optimizer)) for flag in (True, False)}
    samples = {True: [], False: []}
    for repeat in range(repeats + 1):
        for flag, (m, opt) in copies.items():
            start = time.perf_counter()
            for _ in range(steps if repeat else 1):  # repeat 0: compile and warm up
                loss = train_step(m, opt, noisy, clean, with_scc=flag)
            jax.block_until_ready((loss, nnx.state(m)))
            if repeat:
                samples[flag].append((time.perf_counter() - start) / steps)
    return StepTimes(statistics.median(samples[True]), statistics.median(samples[False]))


class Result(NamedTuple):
    """What ``main`` measured: held-out SCC before and after, and the step times."""

    initial: float
    final: float
    times: StepTimes


def main(argv=None) -> Result:
    """Trains, prints progress and the SCC term's share of a step, saves the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    parser.add_argument("--batch", type=int, default=16, help="patches per step")
    parser.add_argument("--eval-every", type=int, default=20, help="steps between evaluations")
    parser.add_argument("--out", default="training_loss.png", help="figure path (PNG)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-repeats", type=int, default=11,
                        help="timed runs of the step with and without the SCC term (medians)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    rng = np.random.default_rng(args.seed)
    train_images = [load_gray(n) for n in TRAIN_IMAGES]
    held_images = [load_gray(n) for n in HELD_OUT_IMAGES]
    held_clean = random_patches(held_images, 64, rng)
    held_noisy = held_clean + NOISE * rng.standard_normal(held_clean.shape).astype(np.float32)

    model = Denoiser(rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(LEARNING_RATE), wrt=nnx.Param)
    steps, scores = [0], [float(held_out_scc(model, held_noisy, held_clean))]
    print(f"held-out SCC of the noisy inputs (step 0): {scores[0]:.4f}")
    for step in range(1, args.steps + 1):
        clean = random_patches(train_images, args.batch, rng)
        noisy = clean + NOISE * rng.standard_normal(clean.shape).astype(np.float32)
        loss = train_step(model, optimizer, noisy, clean, with_scc=True)
        if step % args.eval_every == 0 or step == args.steps:
            steps.append(step)
            scores.append(float(held_out_scc(model, held_noisy, held_clean)))
            print(f"step {step:4d}  loss {float(loss):.4f}  held-out SCC {scores[-1]:.4f}")
    initial, final = scores[0], scores[-1]
    print(f"held-out SCC: {initial:.4f} -> {final:.4f} "
          f"({time.perf_counter() - start:.1f} s)")

    times = time_steps(model, optimizer, jnp.asarray(noisy), jnp.asarray(clean), args.timing_repeats)
    scc_ms = 1e3 * (times.with_scc - times.without_scc)
    print(f"SCC term: {scc_ms / (1e3 * times.with_scc):.0%} of a training step "
          f"({scc_ms:.2f} ms of {1e3 * times.with_scc:.2f} ms; "
          f"batch {args.batch}x{PATCH}x{PATCH}, medians, jitted)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    denoised = np.asarray(model(held_noisy[:1]))[0, ..., 0]
    fig = plt.figure(figsize=(13, 3.8))
    grid = fig.add_gridspec(1, 5, width_ratios=[2.2, 0.15, 1, 1, 1])
    ax = fig.add_subplot(grid[0])
    ax.plot(steps, scores, marker="o", label="denoised vs. clean")
    ax.axhline(initial, color="gray", linestyle="--", label="noisy vs. clean")
    ax.set_xlabel("training step")
    ax.set_ylabel("SCC on held-out patches")
    ax.set_title("Loss 1 - SCC (+ MSE): held-out SCC")
    ax.legend(loc="lower right")
    for i, (title, img) in enumerate(
        [("noisy", held_noisy[0, ..., 0]), ("denoised", denoised), ("clean", held_clean[0, ..., 0])]
    ):
        a = fig.add_subplot(grid[2 + i])
        a.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
        a.set_title(f"held-out: {title}")
        a.set_axis_off()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"Saved figure to {args.out}")
    return Result(initial, final, times)


if __name__ == "__main__":
    main()
