"""The documentation runs as written: every module's ``>>>`` examples, the README's
and the migration guide's ``python`` blocks; and CI runs the README's test command."""

import doctest
import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import jax_scc

ROOT = Path(__file__).parent.parent
OPTIONAL_DEPENDENCIES = {"jax_scc.clu": "clu", "jax_scc.nnx": "flax"}


def _module_names():
    names = [jax_scc.__name__]
    for info in pkgutil.walk_packages(jax_scc.__path__, prefix=jax_scc.__name__ + "."):
        names.append(info.name)
    return sorted(names)


def test_docstring_examples_of_every_module():
    """Modules are found with pkgutil, so modules added later are picked up."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    names = _module_names()
    assert {"jax_scc._src.functional", "jax_scc._src.metric", "jax_scc.clu"} <= set(names)
    for name in names:
        if name in OPTIONAL_DEPENDENCIES and importlib.util.find_spec(OPTIONAL_DEPENDENCIES[name]) is None:
            continue
        for test in finder.find(importlib.import_module(name), name):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed"


@pytest.mark.parametrize("name", sorted(jax_scc.__all__))
def test_public_callables_have_examples(name):
    obj = getattr(jax_scc, name)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return  # constants such as DEFAULT_HP_FILTER
    doc = inspect.getdoc(obj) or ""
    assert ">>>" in doc, f"jax_scc.{name} has no docstring example"
    takes_args = inspect.isfunction(obj) and bool(inspect.signature(obj).parameters)
    assert "Args:" in doc or not takes_args, f"jax_scc.{name} has no Args section"


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), flags=re.S)


@pytest.mark.parametrize("path", ["README.md", "docs/migrating_from_torchmetrics.md"])
def test_python_blocks_run(path):
    """```python blocks run in order, in one namespace per file (```py blocks are
    illustrations); blocks using clu need clu, blocks using flax need flax."""
    blocks = _python_blocks(path)
    assert len(blocks) >= 3
    namespace = {"__name__": "docs_example"}
    for i, block in enumerate(blocks):
        if "clu" in block and importlib.util.find_spec("clu") is None:
            continue
        if "flax" in block and importlib.util.find_spec("flax") is None:
            continue
        exec(compile(block, f"{path}[python block {i}]", "exec"), namespace)


def test_readme_has_exactly_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    main = re.findall(r"<!-- main-command -->\n```\n(.+?)\n```\n<!-- /main-command -->", readme)
    test = re.findall(r"<!-- test-command -->\n```\n(.+?)\n```\n<!-- /test-command -->", readme)
    assert len(main) == 1 and len(test) == 1
    assert "examples/ct_reconstruction.py" in main[0]
    assert "pytest" in test[0] and 'pip install -e ".[test]"' in test[0]
    assert "<!-- test-command -->" in (ROOT / ".ci" / "run").read_text()
