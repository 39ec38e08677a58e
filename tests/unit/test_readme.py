"""README.rst's commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_COMMAND = (
    "(command -v Xvfb >/dev/null && command -v redis-server >/dev/null"
    " || (apt-get update -qq && apt-get install -y -qq xvfb redis-server))"
    " && pip install -e '.[test]' && python -m pytest"
)
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


def test_readme_renders_without_warnings():
    """README.rst is valid reStructuredText (a broken table or list is a failure, not a shrug)."""
    import docutils.core

    docutils.core.publish_doctree(
        (ROOT / "README.rst").read_text(), settings_overrides={"report_level": 2, "halt_level": 2}
    )


def test_every_public_name_is_documented():
    """Each name in tradefeed.__all__ appears in README.rst."""
    import tradefeed

    readme = (ROOT / "README.rst").read_text()
    missing = [name for name in tradefeed.__all__ if name not in readme]
    assert missing == []
