"""Soak: does a tradefeed client's memory stay flat over a long run (10 M trades)?

The server (``server.py soak``) streams N trades, :data:`PER_FRAME` per frame, each
frame of one of the instruments of :data:`benchmarks.frames.SOAK_INSTRUMENTS` in turn,
generating the frames as it goes.  Every trade id is new: de-duplication keeps every
trade, so each instrument's window (the last ``dedup_window`` ids, 4,096 by default)
fills within the first tens of thousands of trades and from then on forgets one id for
each one it learns.  A window (or a stats counter, a per-symbol table) that were not
bounded would grow with every trade, which ten million trades make plain.

One consumer process, tradefeed as shipped (FeedManager with the default dispatcher
thread, ``ping_interval=0``, a counting callback), samples its own memory every
``sample_every`` trades (:func:`benchmarks.consumers.memory_sample`): resident memory
(``VmRSS``) and Python's allocated blocks.  Growth is measured from the sample at
:data:`WARMUP_TRADES` (imports done, buffers grown, windows full) to the end.  Resident
memory wanders by a few MiB either way meanwhile (trades waiting for the callback when
the dispatcher falls behind, memory the C allocator keeps once freed), so the verdict
takes the trend instead of the last sample alone: FLAT when the Theil-Sen line through
every sample from the baseline on (the median of the slopes between every two) rises by
less than :data:`FLAT_GROWTH_MIB` over that span.  A leak of a few bytes per trade
would rise by tens of MiB.
"""

from __future__ import annotations

import statistics
from typing import Any

from .consumers import label
from .frames import SOAK_INSTRUMENTS
from .harness import Log, Scenario, ServerProcess, run_job, throughput_timeout
from .job import Job

__all__ = [
    "CONSUMER",
    "DEFAULT_SAMPLE_EVERY",
    "DEFAULT_TRADES",
    "FLAT_GROWTH_MIB",
    "PER_FRAME",
    "REPORT_EVERY",
    "WARMUP_TRADES",
    "soak",
    "theil_sen_rise",
    "summarize",
    "table",
    "title",
    "verdict",
]

#: trades per soak by default (``run.py --soak-trades``): issue 7's "10 M trades"
DEFAULT_TRADES = 10_000_000
#: trades between memory samples by default (``run.py --sample-every``)
DEFAULT_SAMPLE_EVERY = 500_000
#: the consumer soaked: tradefeed's default dispatch mode
CONSUMER = "tradefeed-thread"
#: trades per frame of the soak stream
PER_FRAME = 20
#: the baseline: growth is measured from the last sample at or before this many trades
WARMUP_TRADES = 1_000_000
#: FLAT: the trend of resident memory from the baseline to the end rises less (MiB)
FLAT_GROWTH_MIB = 5.0
#: the table shows the first sample, every sample at a multiple of this, and the last
#: (every sample of a run shorter than two of these)
REPORT_EVERY = 1_000_000
#: a server thread on the CPU for this fraction of the stream or more may have set the pace
_SERVER_BUSY = 0.5
#: the name of the soak run on the server (the last segment of the URL path)
_RUN = "soak"


def _quiet(line: str) -> None:
    """The default progress log: none."""


def soak(trades: int, sample_every: int, *, consumer: str = CONSUMER, log: Log = _quiet) -> Scenario:
    """*consumer* counts *trades* unique trades from a soak server, sampling its memory
    every *sample_every* trades; one run (a steady state, not a race).

    :raises ValueError: *trades* is not a positive multiple of :data:`PER_FRAME`.
    """
    if trades < PER_FRAME or trades % PER_FRAME:
        raise ValueError("soak trades (%d) must be a positive multiple of %d" % (trades, PER_FRAME))
    params = {"trades": trades, "per_frame": PER_FRAME, "instruments": len(SOAK_INSTRUMENTS), "sample_every": sample_every}
    scenario = Scenario("soak", params)
    log("soak: %s counts %s trades, memory sampled every %s ..." % (consumer, format(trades, ","), format(sample_every, ",")))
    with ServerProcess("soak", "--trades", trades, "--per-frame", PER_FRAME) as server:
        job = Job(consumer, server.url("/run/" + _RUN), trades, throughput_timeout(trades), sample_every=sample_every)
        result = run_job(job)
        figures = server.wait_report(_RUN) if result.get("counted") else None
    if figures:
        result["server_rate"], result["server_busy"] = float(figures[0]), float(figures[1])
    scenario.runs.append({consumer: result})
    row = summarize(scenario)[0]
    log("soak: " + verdict(row)[0])
    return scenario


def _baseline(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample growth is measured from: the last at or before :data:`WARMUP_TRADES`
    when the run went beyond it, else (a short run, or samples too sparse) the first."""
    settled = [s for s in samples if s["trades"] <= WARMUP_TRADES]
    return settled[-1] if settled and samples[-1]["trades"] > WARMUP_TRADES else samples[0]


def theil_sen_rise(samples: list[dict[str, Any]], key: str, along: str = "trades") -> float:
    """How much *key* rises from the first to the last of *samples* along their
    Theil-Sen line over *along* (the median of the slopes between every two samples: a
    spike in a few samples does not tilt it); 0 for fewer than two distinct *along*."""
    pairs = [(a, b) for i, a in enumerate(samples) for b in samples[i + 1 :] if b[along] > a[along]]
    if not pairs:
        return 0.0
    slope = statistics.median((b[key] - a[key]) / (b[along] - a[along]) for a, b in pairs)
    return float(slope * (samples[-1][along] - samples[0][along]))


def _shown(samples: list[dict[str, Any]], trades: int, highest: dict[str, Any]) -> list[dict[str, Any]]:
    """The samples the table shows: every one of a short run (under two
    :data:`REPORT_EVERY`), else the first, those at multiples of it, the *highest* and
    the last."""
    if trades < 2 * REPORT_EVERY:
        return samples
    last = len(samples) - 1
    return [
        s for i, s in enumerate(samples) if i in (0, last) or s is highest or s["trades"] % REPORT_EVERY == 0
    ]  # fmt: skip


def summarize(scenario: Scenario) -> list[dict[str, Any]]:
    """One row per consumer (a soak has one): its rate, the memory samples, growth from
    the baseline to the end and the verdict, the transients, the feed's counters."""
    trades = scenario.params["trades"]
    rows = []
    for name, result in scenario.runs[0].items():
        samples: list[dict[str, Any]] = result.get("samples") or []
        done = bool(result.get("complete")) and bool(samples) and samples[-1]["trades"] == trades
        row: dict[str, Any] = {
            "consumer": name,
            "runs": 1,
            "failed": int(not done),
            "counted": result.get("counted", 0),
            "rate": trades / result["elapsed_s"] if done else None,
            "cpu_us_per_trade": result["cpu_s"] / trades * 1e6 if done else None,
            # VmHWM, or a sample above it: Linux updates the high-water mark lazily
            "peak_rss_mib": max([result.get("peak_rss_kib", 0)] + [s["rss_kib"] for s in samples]) / 1024,
            "samples": samples,
            "shown": samples,
            "stats": result.get("stats", {}),
            "server_busy": result.get("server_busy"),
            "errors": result.get("errors", [])[:3],
        }
        if samples:
            first, base, end = samples[0], _baseline(samples), samples[-1]
            settled = samples[samples.index(base) :]
            highest = max(settled, key=lambda s: s["rss_kib"])
            trend = theil_sen_rise(settled, "rss_kib") / 1024
            row.update(
                shown=_shown(samples, trades, highest),
                start_rss_mib=first["rss_kib"] / 1024,
                baseline_trades=base["trades"],
                baseline_rss_mib=base["rss_kib"] / 1024,
                end_rss_mib=end["rss_kib"] / 1024,
                growth_mib=(end["rss_kib"] - base["rss_kib"]) / 1024,
                trend_mib=trend,
                trend_samples=len(settled),
                highest_trades=highest["trades"],
                highest_growth_mib=(highest["rss_kib"] - base["rss_kib"]) / 1024,
                most_backlog=max(s.get("backlog", 0) for s in samples),
                blocks_growth=end["blocks"] - base["blocks"],
                blocks_trend=theil_sen_rise(settled, "blocks"),
                flat=done and trend < FLAT_GROWTH_MIB,
            )
        rows.append(row)
    return rows


def title(scenario: Scenario) -> str:
    """The heading line of a soak's table."""
    p = scenario.params
    return "%s trades, %d trades/frame, %d instruments in turn, unique trade ids; memory sampled every %s trades" % (
        format(p["trades"], ","), p["per_frame"], p["instruments"], format(p["sample_every"], ","),
    )  # fmt: skip


def table(row: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and body of the samples table: trades so far, seconds, the rate since
    the row before, RSS and its high-water mark, allocated blocks, and the most trades
    waiting for the callback since the row before."""
    headers = [
        "trades", "elapsed s", "trades/s since previous", "RSS MiB", "vs baseline", "peak so far",
        "py blocks", "vs baseline", "most queued",
    ]  # fmt: skip
    samples = row["samples"]
    if not samples:
        return headers, []
    base, before = _baseline(samples), {"trades": 0, "elapsed_s": 0.0}
    body = []
    for s in row["shown"]:
        span = s["elapsed_s"] - before["elapsed_s"]
        since = [t for t in samples if before["trades"] < t["trades"] <= s["trades"]]
        body.append(
            [
                format(s["trades"], ","),
                "%.1f" % s["elapsed_s"],
                format((s["trades"] - before["trades"]) / span, ",.0f") if span > 0 else "-",
                "%.1f" % (s["rss_kib"] / 1024),
                "%+.1f" % ((s["rss_kib"] - base["rss_kib"]) / 1024),
                "%.1f" % (max(s.get("hwm_kib", 0), s["rss_kib"]) / 1024),
                format(s["blocks"], ","),
                format(s["blocks"] - base["blocks"], "+,"),
                format(max(t.get("backlog", 0) for t in since), ","),
            ]
        )
        before = s
    return headers, body


def verdict(row: dict[str, Any]) -> list[str]:
    """The conclusion, then the whole-run figures and the feed's counters."""
    who = label(row["consumer"])
    if "growth_mib" not in row:
        return ["%s: no memory samples (counted %s trades): failed" % (who, format(row["counted"], ","))]
    outcome = "FLAT" if row["flat"] else "did not finish" if row["failed"] else "GROWING"
    lines = [
        "%s: RSS %+.1f MiB from %s trades to the end (%.1f -> %.1f MiB); trend %+.1f MiB over the same span "
        "(Theil-Sen, %d samples): %s (threshold: trend under +%.1f MiB)"
        % (
            who, row["growth_mib"], format(row["baseline_trades"], ","), row["baseline_rss_mib"], row["end_rss_mib"],
            row["trend_mib"], row["trend_samples"], outcome, FLAT_GROWTH_MIB,
        ),  # fmt: skip
        "on the way: highest sample %+.1f MiB (at %s trades), peak RSS %.1f MiB (VmHWM), at most %s trades queued"
        % (row["highest_growth_mib"], format(row["highest_trades"], ","), row["peak_rss_mib"], format(row["most_backlog"], ",")),
    ]
    if row["rate"] is not None:
        lines.append(
            "%s trades/s over the run, CPU %.1f us/trade; RSS %.1f MiB at the first sample; "
            "Python allocated blocks %s from the baseline to the end, trend %s"
            % (
                format(row["rate"], ",.0f"), row["cpu_us_per_trade"], row["start_rss_mib"],
                format(row["blocks_growth"], "+,"), format(row["blocks_trend"], "+,.0f"),
            )  # fmt: skip
        )
    if row["stats"]:
        lines.append("feed stats() at the end: " + ", ".join("%s %s" % (k, format(v, ",")) for k, v in row["stats"].items()))
    busy = row["server_busy"]
    if busy is not None:
        pace = "the client set the pace" if busy < _SERVER_BUSY else "the server may have limited the client"
        lines.append("server: its thread was on the CPU %.0f%% of the streaming time (%s)" % (100 * busy, pace))
    return lines
