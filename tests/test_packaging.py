"""The package as users install it: the wheel's contents and metadata.

Builds the wheel (``python -m build --wheel --no-isolation``) from a copy of the
working tree in ``tmp_path``, so that the build leaves nothing in the checkout.
"""

import email.parser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import jax_scc

REPO = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "out"
)


def test_wheel_contents_and_metadata(tmp_path):
    pytest.importorskip("build")
    src, out = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(REPO, src, ignore=_SKIP)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=src, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    assert wheel.name == f"jax_scc-{jax_scc.__version__}-py3-none-any.whl"

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = f"jax_scc-{jax_scc.__version__}.dist-info"
        metadata = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode())
        entry_points = zf.read(f"{info}/entry_points.txt").decode()

    tops = {n.split("/")[0] for n in names}
    assert tops == {"jax_scc", info}, tops  # no tests/, benchmarks/, examples/ or docs/
    for name in ("py.typed", "cli.py", "__main__.py", "_cli_io.py", "_version.py", "_src/functional.py",
                 "_src/execution/chunked.py"):
        assert f"jax_scc/{name}" in names, name
    assert f"{info}/licenses/LICENSE" in names

    assert "[console_scripts]" in entry_points
    assert "jax-scc = jax_scc.cli:console_main" in entry_points

    assert metadata["Name"] == "jax_scc"
    assert metadata["Version"] == jax_scc.__version__
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Author"] == "jax_scc developers"
    assert metadata["Summary"] and metadata["Keywords"]
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    extras = set(metadata.get_all("Provides-Extra"))
    assert {"cli", "test", "examples", "clu", "nnx", "bench"} <= extras
    requires = metadata.get_all("Requires-Dist")
    assert any(r.startswith("flax") and 'extra == "nnx"' in r for r in requires)
    assert any(r.startswith("imageio") and 'extra == "cli"' in r for r in requires)
    assert any(r.startswith("tifffile") and 'extra == "cli"' in r for r in requires)
    assert any(r.startswith("jax>=") and "extra" not in r for r in requires)
