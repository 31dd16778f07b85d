"""A fusion barrier for XLA's CPU backend.

XLA fuses chains of elementwise operations on shifted slices into single
loops and, to do so, recomputes a producer once per use. For SCC's
doubling trees and for the high-pass feeding them that turns O(log w) work
into O(w) (and evaluates the high-pass dozens of times per pixel).
``lax.optimization_barrier`` does not prevent it on CPU (it is expanded away
before fusion), but the operands and results of a conditional are always
materialised. :func:`stage` computes a function in a conditional whose
predicate is always true yet opaque to XLA's simplifier.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import jax
import jax.numpy as jnp
from jax import lax

T = TypeVar("T")


def stage(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, computed as a stage of its own: its operands are in
    memory before it runs and its results after, and XLA fuses nothing across.

    The stage runs in a conditional's branch. A branch that returns its
    operands (``stage(lambda *x: x, ...)``: a barrier on values computed
    outside) costs a copy of each, which XLA makes for a conditional's
    results; one that computes something (a pad, a pass) writes its results
    once.

    The predicate ``not (v < v)`` is true for every value, NaN included, so
    the second branch (zeros) is never taken; under ``vmap`` the conditional
    becomes a select of the same values. Differentiable like ``fn``.
    """
    leaves = jax.tree.leaves(args)
    if not leaves:
        return fn(*args)
    # A value from the middle of an operand: one from its corner could be a
    # known 0 (a padded operand; XLA would fold the predicate away).
    first = leaves[0]
    middle = tuple(d // 2 for d in first.shape)
    probe = lax.reshape(lax.slice(first, middle, tuple(i + 1 for i in middle)), ())
    keep = jnp.logical_not(probe < probe)

    def zeros(*args):  # like fn's results (their types under shard_map too); fn's work is dead code
        return jax.tree.map(jnp.zeros_like, fn(*args))

    return lax.cond(keep, fn, zeros, *args)
