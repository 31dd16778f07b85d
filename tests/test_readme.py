"""The README's Python examples run as written, and CI runs the README's test command."""

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_python_blocks_run():
    """Every ```python block of the README runs (```py blocks are illustrations that need
    several processes or devices and are exercised by their own tests)."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no ```python example"
    for i, block in enumerate(blocks):
        namespace = {"__name__": f"readme_block_{i}"}
        exec(compile(block, f"README.md[python block {i}]", "exec"), namespace)


def test_readme_has_exactly_the_two_setup_commands_and_ci_runs_the_test_one():
    main = re.findall(r"<!-- main-command -->\n```\n(.+?)\n```\n<!-- /main-command -->", README)
    test = re.findall(r"<!-- test-command -->\n```\n(.+?)\n```\n<!-- /test-command -->", README)
    assert len(main) == 1 and len(test) == 1
    assert "examples/ct_reconstruction.py" in main[0]
    assert "pytest" in test[0] and 'pip install -e ".[test]"' in test[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci  # .ci/run executes the README block itself
