"""README.rst's commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_COMMAND = "pip install -e '.[test]' && python -m pytest"
DEMO_COMMAND = "pip install -e '.[sim]' && tradefeed demo"


def test_ci_runs_the_readme_test_command_verbatim():
    """The test command in README.rst is the last command of .ci/run."""
    readme = (ROOT / "README.rst").read_text()
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert "    " + TEST_COMMAND + "\n" in readme
    assert ci_lines[-1] == TEST_COMMAND


def test_readme_gives_the_demo_command():
    """README.rst's quick start installs and runs the demo in one line."""
    assert "    " + DEMO_COMMAND + "\n" in (ROOT / "README.rst").read_text()
