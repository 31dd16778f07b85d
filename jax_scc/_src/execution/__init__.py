"""How the definition is executed: the one place that chooses a strategy per platform.

Three strategies compute the same numbers (the same definition; only the
order of a few float32 additions may differ):

* :mod:`~jax_scc._src.execution.chunked` (CPU): the batch walked in
  cache-sized chunks (whole samples, planes, or bands of rows);
* :mod:`~jax_scc._src.execution.whole` (GPU, TPU): one graph for the batch;
* :mod:`~jax_scc._src.execution.kernel` (TPU, ``method="auto"``): Pallas
  kernels for the forward and the loss's gradient, a plane (or a band of
  its rows) per grid step
  in VMEM, the whole graph for what they do not cover.

``method`` chooses how the window moments are formed: ``"slices"`` (blocks
paired by shifted slices, O(log w) doubling steps), ``"conv"`` (the same pairs
by dilated 2-tap depthwise ``lax.conv``) or ``"direct"`` (every window's
values at once: O(w) per pass on CPU; on GPU/TPU, for windows up to 8 x 8,
the two-pass formulation of :func:`~jax_scc._src.definition.planes_map`).
``"auto"`` picks per platform, from ``benchmarks/``: on CPU direct up to
``_DIRECT_UP_TO`` and slices above (measured); on GPU direct up to
:data:`~jax_scc._src.execution.whole.WINDOW_2D_UP_TO` and slices above, on
TPU the kernels, and slices where they do not apply (from the accelerator
compilers' own figures, ``benchmarks/accel_compile.py``).

The platform is the one the program is *compiled for*, not
``jax.default_backend()``: an SCC evaluation is one primitive
(:data:`scc_p`) whose lowering traces the strategy of the platform it is
lowered for, so an ahead-of-time compile for a GPU or TPU (also from a
CPU-only process, and ``jax.export`` for several platforms) carries each
platform's own program, and no other strategy is traced.
"""

from __future__ import annotations

import functools
from typing import List, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import core, lax
from jax.custom_derivatives import SymbolicZero
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jax_scc._src import definition, extents
from jax_scc._src.config import Config
from jax_scc._src.execution import chunked, whole
from jax_scc._src.layout import from_nchw, to_nchw


# On CPU, windows up to this size are formed directly: as fast as the doubling
# tree or faster (benchmarks/results/cpu.md, window table), and exact to float32
# rounding on 2 x 2 windows of quantized images, where the tree is not.
_DIRECT_UP_TO = 5

# The platforms with a strategy of their own (lowering rules of scc_p, branches
# of lax.platform_dependent); any other platform gets the GPU strategy.
_PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


@functools.lru_cache(maxsize=None)
def _kernels():
    """The TPU kernels' module (:mod:`~jax_scc._src.execution.kernel`),
    imported when a TPU program is first traced, so that ``import jax_scc``
    loads no Pallas; ``None`` where this JAX lacks the Pallas TPU API the
    kernels use (TPU then runs the whole graph)."""
    try:
        from jax_scc._src.execution import kernel
    except (ImportError, AttributeError):
        return None
    return kernel


class Strategy(NamedTuple):
    """A resolved way to run the definition."""

    name: str  # "chunked", "whole", or "kernel" (the whole graph where the kernel does not apply)
    pairing: str  # "slices", "conv" or "direct"
    borders: str = "strips"  # whole, direct: how the high-pass reflects ("strips" or "padded")
    window: str = "levels"  # whole, direct: the form of the window pass ("levels" or "two_pass")

    def _kernel_computes(self, p, config: Config, output: str, wanted=(False, False)) -> bool:
        if self.name != "kernel" or _kernels() is None:
            return False
        kernel = _kernels()
        return kernel.applies(config, to_nchw(p, config.data_format).shape, p.dtype, kernel.Job(output, wanted))

    def scc_map(self, p, t, config: Config, tangents=None, sizes=None):
        if self.name == "chunked":
            return chunked.scc_map(p, t, config, self.pairing, tangents=tangents, sizes=sizes)
        if tangents is None and sizes is None and self._kernel_computes(p, config, "map"):
            fmt = config.data_format
            return from_nchw(_kernels().scc_map(to_nchw(p, fmt), to_nchw(t, fmt), config), fmt)
        options = dict(borders=self.borders, window=self.window, sizes=sizes)
        return whole.scc_map(p, t, config, self.pairing, tangents=tangents, **options)

    def scores(self, p, t, config: Config, gradients=(False, False), sizes=None):
        if self.name == "chunked":
            return chunked.scores(p, t, config, self.pairing, gradients=gradients, sizes=sizes)
        output = "gradient" if any(gradients) else "scores"
        if sizes is None and self._kernel_computes(p, config, output, gradients):
            fmt, kernel = config.data_format, _kernels()
            p, t = to_nchw(p, fmt), to_nchw(t, fmt)
            if any(gradients):
                rows, grads = kernel.row_means_and_gradients(p, t, config, gradients)
                grads = tuple(None if x is None else from_nchw(x, fmt) for x in grads)
            else:
                rows, grads = kernel.row_means(p, t, config), (None, None)
            return definition.scores(rows), grads, definition.counted(rows, p.shape)
        options = dict(borders=self.borders, window=self.window, sizes=sizes)
        return whole.scores(p, t, config, self.pairing, gradients=gradients, **options)


def strategy(config: Config, platform: str) -> Strategy:
    """The strategy for ``config`` on ``platform`` (``"cpu"``, ``"cuda"``,
    ``"rocm"`` or ``"tpu"``)."""
    pairing = config.method
    if platform == "cpu":
        if pairing == "auto":
            pairing = "direct" if config.window_size <= _DIRECT_UP_TO else "slices"
        return Strategy("chunked", pairing)
    if pairing == "auto":
        # GPU: the two-pass formulation (an H200's compiler: 24 bytes/px, 2
        # inputs of temporaries, against 330 and 10x for slices). TPU: slices,
        # by the TPU compiler's own estimates: the two-pass formulation is 5x
        # faster for a v6e forward, but its gradient (v5e and v6e) and a v5e
        # forward are split into many pieces (60-130x temporaries).
        small = config.window_size <= whole.WINDOW_2D_UP_TO
        pairing = "direct" if small and platform != "tpu" else "slices"
    if platform == "tpu":
        # TPU lays thin strips out in 8 x 128 tiles (and transposes around
        # them): there the high-pass reads a reflected copy of the images; and
        # XLA for TPU fuses the two-pass window, XLA for GPU the two levels.
        # With "auto", the forward and the loss's gradient run the Pallas
        # kernels (each input read once: 9-21 bytes per pixel against 570-1,100
        # for XLA's programs), the rest that whole graph.
        name = "kernel" if config.method == "auto" else "whole"
        return Strategy(name, pairing, "padded", "two_pass")
    return Strategy("whole", pairing)


def _compute(s: Strategy, config: Config, output: str, wanted: Tuple[bool, bool], p, t, *rest) -> List[jax.Array]:
    """What one SCC evaluation returns, by the strategy ``s`` (a flat list).

    ``rest``: the images' sizes in their canvases first (``config.extents``:
    ``int32 (N, 2)``), then the input tangents.

    * ``output="map"``: ``[map]``, and with input tangents (``wanted`` marks
      which of ``preds``/``target`` have one, given in ``tangents``) ``[map, d_map]``;
    * ``output="scores"``: ``[scores]``, and with ``wanted`` the gradient of
      each sample's counted map sum in each wanted input and the counts:
      ``[scores, *grads, counted]``.
    """
    sizes, tangents = (rest[0], rest[1:]) if config.extents else (None, rest)
    if output == "map":
        if not any(wanted):
            return [s.scc_map(p, t, config, sizes=sizes)]
        given = iter(tangents)
        return list(s.scc_map(p, t, config, tangents=tuple(next(given) if w else None for w in wanted), sizes=sizes))
    if not any(wanted):
        return [s.scores(p, t, config, sizes=sizes)[0]]
    scores, grads, counted = s.scores(p, t, config, gradients=wanted, sizes=sizes)
    return [scores, *(g for g in grads if g is not None), counted]


def _staged(config: Config, output: str, wanted: Tuple[bool, bool], *args) -> List[jax.Array]:
    """:func:`_compute` with every platform's strategy staged out
    (``lax.platform_dependent``; platforms that share a strategy share a
    branch). Every branch is traced: used where JAX must see the computation,
    to transpose the map's tangent and to differentiate :data:`scc_p` itself
    (second and higher derivatives), so TPU's branch is its whole graph, not
    the Pallas kernels, which JAX cannot differentiate."""
    branches, by_strategy = {}, {}
    for platform in _PLATFORMS:
        s = strategy(config, platform)
        if s.name == "kernel":  # Pallas kernels have no derivative: the whole graph
            s = s._replace(name="whole")
        if s not in by_strategy:
            by_strategy[s] = functools.partial(_compute, s, config, output, wanted)
        branches[platform] = by_strategy[s]
    return lax.platform_dependent(*args, default=branches["cuda"], **branches)


# One SCC evaluation as a primitive whose lowering is the strategy of the
# platform it is lowered for: only that strategy is traced (at lowering), the
# program of every other platform costs nothing, and an export for several
# platforms gets each one's (JAX switches between per-platform lowerings).
scc_p = Primitive("jax_scc")
scc_p.multiple_results = True


@scc_p.def_abstract_eval
def _abstract_eval(p, t, *rest, config: Config, output: str, wanted: Tuple[bool, bool]):
    if output == "map":
        return [core.ShapedArray(p.shape, p.dtype)] * (2 if any(wanted) else 1)
    per_sample = core.ShapedArray(p.shape[:1], p.dtype)
    if not any(wanted):
        return [per_sample]
    return [per_sample] + [core.ShapedArray(p.shape, p.dtype)] * sum(wanted) + [per_sample]


def _lowering(platform: Optional[str]):
    def rule(ctx, *args, config: Config, output: str, wanted: Tuple[bool, bool]):
        s = strategy(config, platform or "cuda")
        return mlir.lower_fun(functools.partial(_compute, s, config, output, wanted), multiple_results=True)(ctx, *args)

    return rule


mlir.register_lowering(scc_p, _lowering(None))  # other platforms: the GPU/TPU strategy
for _platform in _PLATFORMS:
    mlir.register_lowering(scc_p, _lowering(_platform), platform=_platform)


def _batched(args, dims, *, config: Config, output: str, wanted: Tuple[bool, bool]):
    """``vmap``: the mapped axis joins the batch axis (samples are independent)."""
    size = next(x.shape[d] for x, d in zip(args, dims) if d is not None)  # None: not mapped
    args = [batching.bdim_at_front(x, d, size) for x, d in zip(args, dims)]
    outs = scc_p.bind(*(x.reshape((-1,) + x.shape[2:]) for x in args), config=config, output=output, wanted=wanted)
    return [x.reshape((size, -1) + x.shape[1:]) for x in outs], [0] * len(outs)


batching.primitive_batchers[scc_p] = _batched


def _primitive_jvp(primals, tangents, *, config: Config, output: str, wanted: Tuple[bool, bool]):
    """Differentiating :data:`scc_p` itself (its first derivative is the rule
    below, which binds it again): autodiff of every platform's strategy."""
    tangents = [ad.instantiate_zeros(x) for x in tangents]
    return jax.jvp(functools.partial(_staged, config, output, wanted), tuple(primals), tuple(tangents))


ad.primitive_jvps[scc_p] = _primitive_jvp


def _operands(p, t, sizes):
    return (p, t) if sizes is None else (p, t, sizes)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _scc(p: jax.Array, t: jax.Array, sizes: Optional[jax.Array], config: Config, output: str) -> jax.Array:
    return scc_p.bind(*_operands(p, t, sizes), config=config, output=output, wanted=(False, False))[0]


@functools.partial(_scc.defjvp, symbolic_zeros=True)
def _scc_jvp(config: Config, output: str, primals, tangents):
    """SCC's derivative rule, computed by the same strategy in the same walk as
    the value.

    * Per-sample scores (the loss path): the walk also returns, chunk by chunk,
      the gradient of each sample's sum of counted map pixels (the rule
      written from the definition, centred: chunk by chunk while each is in
      cache on CPU, :func:`~jax_scc._src.definition.band_gradient`; the
      two-pass formulation's own on GPU/TPU); the tangent is its inner product with the
      input tangents over the sample, divided by the number of counted pixels.
      Linear in the tangents, so JAX's reverse mode only multiplies the stored
      gradients (one per differentiated input) by the cotangent: no second
      walk, no recomputation.
    * The map: the tangent of every map pixel, linear in the tangents; JAX
      transposes it (so it is traced, every platform's strategy staged out),
      and the strategy checkpoints it chunk by chunk.
    """
    p, t, sizes = primals  # the sizes (integers) have no tangent
    tangents = tangents[:2]
    given = tuple(x for x in tangents if type(x) is not SymbolicZero)
    wanted = tuple(type(x) is not SymbolicZero for x in tangents)
    if output == "map":
        # Linear in the tangents, and JAX must see how to transpose it: traced
        # here, with every platform's strategy staged out.
        return tuple(_staged(config, output, wanted, *_operands(p, t, sizes), *given))
    scores, *grads, counted = scc_p.bind(*_operands(p, t, sizes), config=config, output=output, wanted=wanted)
    n = p.shape[0]
    d = sum(jnp.sum((g * x).reshape(n, -1), axis=1) for g, x in zip(grads, given))
    has_data = counted > 0
    return scores, jnp.where(has_data, d / jnp.where(has_data, counted, 1), 0)


@functools.partial(jax.jit, static_argnames=("config", "output"))
def evaluate(p: jax.Array, t: jax.Array, config: Config, output: str, sizes: Optional[jax.Array] = None) -> jax.Array:
    """The SCC map or per-sample scores of 4-D inputs (see the strategies),
    differentiable by the rule above in forward and reverse mode, to any order.

    With ``sizes`` (``int32 (N, 2)``, ``config.extents``), each sample is an
    image of that height and width in the top-left of its canvas: the canvas
    is first reflected at each image's own border
    (:func:`~jax_scc._src.extents.reflect_at_extents`, differentiated by
    JAX), and the strategies leave out what lies outside it."""
    if sizes is not None:
        p, t = (extents.reflect_at_extents(x, sizes, config) for x in (p, t))
    return _scc(p, t, sizes, config, output)
