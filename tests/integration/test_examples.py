"""Every example runs against the simulator and does what its docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True, timeout=45, env=env
    )


def test_callbacks_example_prints_limit_trades_and_exits():
    """examples/callbacks.py --limit 7 prints seven BTC-PERPETUAL trades and exits 0."""
    result = run_example("callbacks.py", "--limit", "7")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 7
    for line in lines:
        ts, symbol, side, amount, at, price = line.split()
        assert symbol == "BTC-PERPETUAL" and side in ("buy", "sell") and at == "@"
        assert int(ts) > 1_700_000_000_000 and Decimal(amount) > 0 and Decimal(price) > 0
