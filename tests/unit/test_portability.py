"""Windows and macOS as far as a Linux machine can check them statically: mypy, told it
is on each platform, type-checks tradefeed/ against that platform's standard library
(``select.poll`` is not there on Windows, ``signal.SIGBREAK`` only there...)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("platform", ["win32", "darwin", "linux"])
def test_mypy_strict_finds_no_error_on(platform, tmp_path):
    result = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--platform", platform,
            "--cache-dir", str(tmp_path / "mypy-cache"), "tradefeed",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
