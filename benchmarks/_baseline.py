"""Import the jax_scc of another git revision next to the working tree's.

``load("HEAD~3")`` extracts that revision's ``jax_scc/`` with ``git archive``
into a temporary folder as package ``jax_scc_<rev>`` (every ``jax_scc`` import
inside it renamed), so that both versions run in one process and can be timed
side by side, interleaved, on the same inputs.
"""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load(rev: str):
    """The package ``jax_scc`` as of git revision ``rev`` (a module object)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    name = f"jax_scc_{sha}"
    if name in sys.modules:
        return sys.modules[name]
    archive = subprocess.run(
        ["git", "archive", "--format=tar", sha, "jax_scc"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    dest = Path(tempfile.mkdtemp(prefix="jax_scc_baseline_"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    (dest / "jax_scc").rename(dest / name)
    for path in (dest / name).rglob("*.py"):
        text = path.read_text()
        path.write_text(re.sub(r"\bjax_scc\b(?=[._ ]|$)", name, text, flags=re.M))
    sys.path.insert(0, str(dest))
    return importlib.import_module(name)
