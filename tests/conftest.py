"""Test-wide JAX settings: surface implicit broadcasting bugs early."""

import sys
from pathlib import Path

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

# Make tests/reference.py importable as `reference` wherever pytest is run from.
sys.path.insert(0, str(Path(__file__).parent))
