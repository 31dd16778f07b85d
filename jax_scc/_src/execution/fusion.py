"""A fusion barrier for XLA's CPU backend.

XLA fuses chains of elementwise operations on shifted slices into single
loops and, to do so, recomputes a producer once per use. For SCC's
doubling trees and for the high-pass feeding them that turns O(log w) work
into O(w) (and evaluates the high-pass dozens of times per pixel).
``lax.optimization_barrier`` does not prevent it on CPU (it is expanded away
before fusion), but the operands and results of a conditional are always
materialised. :func:`materialise` routes values through a conditional whose
predicate is always true yet opaque to XLA's simplifier.
"""

from __future__ import annotations

from typing import TypeVar

import jax
import jax.numpy as jnp
from jax import lax

T = TypeVar("T")


def materialise(tree: T) -> T:
    """Returns ``tree`` unchanged, computed into memory before its consumers run.

    The predicate ``not (v < v)`` is true for every value, NaN included, so
    the second branch (zeros) is never taken; under ``vmap`` the conditional
    becomes a select of the same values. Differentiable like the identity.
    """
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        return tree
    probe = lax.reshape(lax.slice(leaves[0], (0,) * leaves[0].ndim, (1,) * leaves[0].ndim), ())
    keep = jnp.logical_not(probe < probe)
    leaves = lax.cond(
        keep, lambda v: list(v), lambda v: [jnp.zeros_like(x) for x in v], leaves
    )
    return jax.tree.unflatten(treedef, leaves)
