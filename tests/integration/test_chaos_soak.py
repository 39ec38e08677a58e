"""The chaos soak (``benchmarks/chaos.py``, issue 15 part 5), short: half a minute of every
venue with a fault every second or so, every kind of fault at least once, through the same
code as ``python benchmarks/run.py --mode chaos`` (whose default run is ten minutes).

What it checks is the soak's own verdict: no duplicate, no order violation, no trade lost
outside a reported Gap, the SQLite sink holding each delivered trade once, every fault
recovered, every thread ended.  Memory is not judged on so short a run, and no time is
asserted: the recovery times are only reported.
"""

from __future__ import annotations

import pytest

from benchmarks import chaos

pytestmark = pytest.mark.timeout(240)


def test_a_short_chaos_soak_loses_nothing_silently_and_recovers_from_every_fault(tmp_path):
    scenario = chaos.chaos(
        30.0,
        seed=2,
        rate=20.0,
        fault_every=1.0,
        sample_every=5.0,
        ping_interval=1.0,
        ping_timeout=0.5,
        outage=(0.5, 1.5),
        workdir=tmp_path,
    )
    (row,) = chaos.summarize(scenario)
    assert row["problems"] == [], "\n".join(chaos.verdict(row))
    assert set(row["by_kind"]) == set(chaos.FAULTS), row["by_kind"]
    checks = row["checks"]
    assert checks["delivered"] > 1000 and not checks["keys_never_delivered"]
    assert row["sink"]["written"] == checks["delivered"]
