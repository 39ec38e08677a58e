"""README.rst's code runs: every Python block against the simulator, every YAML block
through the configuration check, so a README that drifts from the code fails CI.

Conventions (for whoever edits README.rst):

- Each ``.. code-block:: python`` block is a complete script (its imports included), run
  in a fresh interpreter as a user would paste it.  Before it, a prelude starts a
  :class:`~tradefeed.simulator.Simulator` and points every venue's production address
  (each adapter class's ``default_url``, Rails' ``default_auth_url``) at it, so a block
  written for the real venues, with no ``url=``, streams from the simulator instead:
  the adapters, sockets and threads are the real ones, only the address differs.
- A block that runs until Ctrl-C (``run_forever()``) is preceded by the reST comment
  ``.. readme-test: until Ctrl-C``: once it has printed three lines the test sends it
  SIGINT, as a user would press Ctrl-C, and it must then exit 0 without a traceback.
  Every other block must end by itself, with exit 0.
- ``.. readme-test: skip <reason>`` before a block compiles it without running it (for
  code that cannot run here, such as Windows-only calls); the reason is required.
- Each ``.. code-block:: yaml`` block, and each literal block (``::``) that is a YAML
  mapping of configuration sections, must pass :func:`tradefeed.config.from_dict`;
  ``${VAR}`` resolve to placeholders, and a fragment without ``feeds`` gets one feed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import docutils.core
import docutils.nodes
import pytest
import yaml

from tradefeed import config as cfg

from .conftest import PipeLines, reaped

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.rst"
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
#: lines a Ctrl-C block prints before the test presses Ctrl-C
LINES_BEFORE_CTRL_C = 3
MARKER = re.compile(r"readme-test:\s*(.*)", re.S)

PRELUDE = '''
import atexit as _atexit
from tradefeed.adapters import REGISTRY as _REGISTRY
from tradefeed.adapters.synthetix_user import SynthetixUserAdapter as _SynthetixUserAdapter
from tradefeed.simulator import Simulator as _Simulator

_sim = _Simulator(seed=1, rate=50, history=5).start()
_atexit.register(_sim.stop)
for _name, _cls in _REGISTRY.items():
    _cls.default_url = _sim.url(_name)
_SynthetixUserAdapter.default_url = _sim.url("synthetix")
_REGISTRY["rails"].default_auth_url = _sim.auth_url("rails")
'''


def blocks() -> list[tuple[int, str, str, str]]:
    """``(line, kind, marker, text)`` of README's literal blocks: kind is the code-block
    language (``python``, ``yaml``, ``console``) or ``literal``; marker the text of a
    ``.. readme-test:`` comment just before it."""
    document = docutils.core.publish_doctree(README.read_text(), settings_overrides={"report_level": 5})
    found = []
    for node in document.findall(docutils.nodes.literal_block):
        classes = node.get("classes", [])
        kind = next((c for c in classes if c != "code"), "literal")
        marker = ""
        index = node.parent.index(node)
        previous = node.parent[index - 1] if index > 0 else None
        if isinstance(previous, docutils.nodes.comment):
            match = MARKER.match(previous.astext())
            marker = match.group(1).strip() if match else ""
        found.append((node.line or 0, kind, marker, node.astext()))
    return found


PYTHON = [(line, marker, text) for line, kind, marker, text in blocks() if kind == "python"]


def _config_fragment(text: str) -> dict | None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(data, dict) and set(data) <= {"feeds", "settings", "outputs", "logging"}:
        return data
    return None


YAML = [(line, text) for line, kind, _, text in blocks() if kind == "yaml" or (kind == "literal" and _config_fragment(text))]


class Placeholders(dict):
    """Every ``${VAR}`` resolves: a wallet key to a key-shaped value, the rest to a word."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "0x" + "11" * 32 if key.endswith("PRIVATE_KEY") else "placeholder"


def test_the_readme_has_blocks_of_each_kind():
    """The extraction finds the blocks (an empty list would make the tests below vacuous)."""
    assert len(PYTHON) >= 3 and len(YAML) >= 3


@pytest.mark.parametrize("line, marker, text", PYTHON, ids=[str(line) for line, _, _ in PYTHON])
def test_python_block_runs_against_the_simulator(line, marker, text, tmp_path):
    """The block runs as a script against the simulator and exits 0 (after Ctrl-C if it
    is marked to run until then)."""
    if marker.startswith("skip"):
        assert marker[4:].strip(), "README.rst:%d: a skipped block needs a reason" % line
        compile(text, "README.rst:%d" % line, "exec")
        return
    assert marker in ("", "until Ctrl-C"), "README.rst:%d: unknown readme-test marker %r" % (line, marker)
    script = tmp_path / "block.py"
    script.write_text(PRELUDE + "\n# README.rst line %d\n" % line + text + "\n")
    process = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with reaped(process):
        out, err = PipeLines(process.stdout), PipeLines(process.stderr)
        if marker == "until Ctrl-C":
            for count in range(1, LINES_BEFORE_CTRL_C + 1):
                assert out.wait_for_count(count), "README.rst:%d printed %d lines\n%s" % (line, count - 1, err.rest())
            process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        errors = err.rest()
        assert code == 0, "README.rst:%d exited %d\n%s" % (line, code, errors)
        assert "Traceback" not in errors, errors
        out.rest()


@pytest.mark.parametrize("line, text", YAML, ids=[str(line) for line, _ in YAML])
def test_yaml_block_is_a_valid_configuration(line, text):
    """The block passes the configuration check (a fragment with one feed added)."""
    data = yaml.safe_load(text)
    if "feeds" not in data:
        data = {**data, "feeds": [{"venue": "dopp"}]}
    config = cfg.from_dict(data, source="README.rst:%d" % line, environ=Placeholders())
    assert config.feeds
