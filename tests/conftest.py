"""Test-wide settings: surface implicit broadcasting early; one compilation cache
shared by the test processes; import paths.

The suite runs in several processes (pytest-xdist workers, and the subprocesses
of the x64 and multi-device checks) that compile many of the same programs:
they share JAX's persistent compilation cache in a folder made for this run
(unless ``JAX_COMPILATION_CACHE_DIR`` is set already), so each program is
compiled once per run.
"""

import os
import sys
import tempfile
from pathlib import Path

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the first process of the run
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jax_scc_tests_")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402  (after the cache settings: JAX reads them at import)

jax.config.update("jax_numpy_rank_promotion", "raise")

# Make tests/reference.py and tests/images.py importable wherever pytest runs from.
sys.path.insert(0, str(Path(__file__).parent))

# The checks that run in their own processes take longest: start them first, so
# that the workers (pytest-xdist) finish at about the same time.
_FIRST = ("test_x64.py", "test_distributed.py", "test_docs.py", "test_examples.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.nodeid.split("::")[0].rsplit("/", 1)[-1] not in _FIRST)
