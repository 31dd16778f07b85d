"""float64 (x64 on) runs in a subprocess, since x64 must be set before JAX starts;
it also checks float32 accuracy with XLA's default code generation (the rest
of the suite compiles at optimisation level 0: see conftest.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sewar", reason="sewar not installed")


def test_float64_matches_reference_sewar_and_numerical_gradients():
    here = Path(__file__).parent
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    # Compiled as users compile (conftest.py adds a quicker code generation).
    added = env.pop("JAX_SCC_TESTS_ADDED_XLA_FLAGS", "")
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(added, "").strip() if added else env.get("XLA_FLAGS", "")
    env["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parent), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(here / "_x64_checks.py")], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout and proc.stdout.count("ok ") >= 14
