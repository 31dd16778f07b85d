"""The ``>>>`` examples in every module of jax_scc run and give what they show.

Modules are found with pkgutil, so modules added later are picked up without
editing this file. A module whose optional dependency is missing (``jax_scc.clu``
without ``clu``) is skipped.
"""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import jax_scc

OPTIONAL_DEPENDENCIES = {"jax_scc.clu": "clu"}


def _module_names():
    names = [jax_scc.__name__]
    for info in pkgutil.walk_packages(jax_scc.__path__, prefix=jax_scc.__name__ + "."):
        names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def test_walk_finds_the_known_modules():
    for name in ("jax_scc._src.scc", "jax_scc._src.nan_handling", "jax_scc.clu"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in OPTIONAL_DEPENDENCIES:
        pytest.importorskip(OPTIONAL_DEPENDENCIES[name])
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    tests = finder.find(module, name)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"


@pytest.mark.parametrize("name", sorted(jax_scc.__all__))
def test_public_callables_have_examples(name):
    obj = getattr(jax_scc, name)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return  # constants such as DEFAULT_HP_FILTER
    doc = inspect.getdoc(obj) or ""
    assert ">>>" in doc, f"jax_scc.{name} has no docstring example"
    takes_args = inspect.isfunction(obj) and bool(inspect.signature(obj).parameters)
    assert "Args:" in doc or not takes_args, f"jax_scc.{name} has no Args section"


def test_migration_guide_python_blocks_run():
    """The ```python blocks of docs/migrating_from_torchmetrics.md run in order in one
    namespace (```py blocks are illustrations); blocks using clu need clu."""
    import importlib.util
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "migrating_from_torchmetrics.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 3
    has_clu = importlib.util.find_spec("clu") is not None
    namespace = {"__name__": "migration_guide"}
    for i, block in enumerate(blocks):
        if "clu" in block and not has_clu:
            continue
        exec(compile(block, f"migrating_from_torchmetrics.md[python block {i}]", "exec"), namespace)
