"""Test-wide settings: surface implicit broadcasting early; one compilation cache
shared by the test processes; quicker machine-code generation; import paths.

The suite runs in several processes (pytest-xdist workers, and the subprocesses
of the x64 and multi-device checks) that compile many of the same programs:
they share JAX's persistent compilation cache in a folder made for this run
(unless ``JAX_COMPILATION_CACHE_DIR`` is set already), so each program is
compiled once per run.

Most of the suite's time is XLA compiling small programs. The tests compile with
XLA's backend optimisation level 0 (LLVM -O0): the same XLA programs (HLO), and
machine code whose float32 results differ from the default level's by rounding
(at most 4e-7 on the maps we compared, far inside every tolerance), in about 40%
less time. The float64 and production checks (tests/_x64_checks.py) compile at
the default level, as users do: test_x64.py takes the flag out again
(``JAX_SCC_TESTS_ADDED_XLA_FLAGS`` names it). Set ``JAX_SCC_TESTS_DEFAULT_CODEGEN=1``
to run everything at the default level.
"""

import os
import sys
import tempfile
from pathlib import Path

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the first process of the run
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jax_scc_tests_")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

FAST_CODEGEN = "--xla_backend_optimization_level=0"
if not os.environ.get("JAX_SCC_TESTS_DEFAULT_CODEGEN") and FAST_CODEGEN not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + FAST_CODEGEN).strip()
    os.environ["JAX_SCC_TESTS_ADDED_XLA_FLAGS"] = FAST_CODEGEN

import jax  # noqa: E402  (after the cache and XLA settings: JAX reads them at start)

jax.config.update("jax_numpy_rank_promotion", "raise")

# Make tests/reference.py and tests/images.py importable wherever pytest runs from.
sys.path.insert(0, str(Path(__file__).parent))

# The checks that run in their own processes take longest: start them first, so
# that the workers (pytest-xdist) finish at about the same time.
_FIRST = ("test_x64.py", "test_distributed.py", "test_docs.py", "test_examples.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.nodeid.split("::")[0].rsplit("/", 1)[-1] not in _FIRST)
