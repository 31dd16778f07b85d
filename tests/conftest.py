"""Test-wide JAX settings (surface implicit broadcasting early) and import paths."""

import sys
from pathlib import Path

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

# Make tests/reference.py and tests/images.py importable wherever pytest runs from.
sys.path.insert(0, str(Path(__file__).parent))
