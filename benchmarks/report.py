"""Summaries of measured scenarios: text tables, JSON, and ``RESULTS.rst``.

Pure arithmetic and formatting over :class:`benchmarks.harness.Scenario` values, plus
the one file this suite writes into the repository (``RESULTS.rst``, on request).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any

from . import chaos, soak
from .consumers import BACKLOG_EVERY, label
from .frames import SOAK_INSTRUMENTS
from .harness import LATENCY_POINTS, REPO, Scenario
from .idle import IDLE_CONSUMERS

__all__ = ["machine", "source_digest", "summarize", "tables", "update_results", "write_json"]

RESULTS = REPO / "benchmarks" / "RESULTS.rst"
_MODE_TITLES = {
    "throughput": "Throughput", "latency": "Latency", "idle": "Idle connections", "soak": "Soak", "chaos": "Chaos soak",
    "hotpath": "Hot path stages, in one process",
}  # fmt: skip

_PREAMBLE = """\
=================
Benchmark results
=================

Written by ``python benchmarks/run.py --write-results`` (``--help`` lists the options);
one section per day and machine, newest first, and within it one part per mode, each
stamped with the tradefeed commit it measured: each part describes the code named in it
(the hot path changed under issues 7 and 13, so an older part describes older code).  The
machines are shared: compare the ratios, which are taken within each repetition, more than
the absolute rates.

- **throughput**: a server process sends pre-built Dopp frames (unique trade ids) as fast
  as the socket takes them; each client runs in its own process and counts N trades.
  ``trades/s`` is N over the time from just before connecting to the N-th trade; ``CPU
  us/trade`` is the client process's CPU time (every thread) over the same span;
  ``x floor`` is the median, over repetitions, of the rate divided by the floor's rate in
  the same repetition.  The floor is websocket-client ``create_connection`` + ``recv()``
  + ``json.loads``.  ``discard bytes`` reads the raw socket and parses nothing: it shows
  what the server can send, and must be far above every client.
- **latency**: one-trade frames at a fixed rate; the server logs ``time.time_ns()`` just
  before sending each frame, the client's callback stamps ``time.time_ns()`` per trade id
  (same machine, same clock).  The first tenth of each run is warm-up.  Each figure is
  the median over repetitions of that run's figure, so one repetition disturbed by other
  work on a shared machine does not set it.  ``CPU %`` is of one core; ``CPU us/trade``
  is the process's CPU time over the whole run (warm-up included) per trade, and
  ``peak RSS MiB`` its resident high-water mark (the highest over repetitions).  Each part also
  gives the load average (1 minute) when it started: above about 1 on 2 cores, other
  work competed for the CPU and every figure is pessimistic.
- **idle**: N connections to a server that sends nothing, keepalive at each client's
  defaults; measured over a window once all are open.  ``KiB/conn`` is resident memory
  above the process's own before connecting, divided by N.
"""
_PREAMBLE += """\
- **soak** (``--mode soak``, not part of the default run): tradefeed with its default
  dispatcher thread counts %(soak_trades)s trades of unique ids, %(per_frame)d per frame, the
  frames of %(instruments)d instruments in turn, from a server that generates them as it goes.
  The consumer samples its resident memory (``VmRSS``) and Python's allocated blocks
  (``sys.getallocatedblocks()``) every %(every)s trades; the table shows the first sample,
  every million, the highest and the last.  The baseline is the sample at %(warmup)s
  trades (imports done, buffers grown, de-duplication windows full).  Resident memory
  wanders by a few MiB meanwhile (trades queued while the callback falls behind, memory
  the C allocator keeps once freed), so the verdict takes the trend: **FLAT** means the
  Theil-Sen line through the samples from the baseline on (the median of the slopes
  between every two samples, which a passing spike does not tilt) rises by less than
  %(flat).1f MiB from the baseline to the end (a leak of a few bytes per trade would show
  tens).  Allocated blocks count the Python objects alive whatever the allocators keep;
  ``most queued`` is the most trades the feed had handed to the dispatcher and the
  callback not yet had, looked at every %(backlog)s trades.  The server reports the share of
  the stream its thread spent on the CPU: well below 100 %%, it did not set the rate.
""" % {
    "soak_trades": format(soak.DEFAULT_TRADES, ","),
    "per_frame": soak.PER_FRAME,
    "instruments": len(SOAK_INSTRUMENTS),
    "every": format(soak.DEFAULT_SAMPLE_EVERY, ","),
    "warmup": format(soak.WARMUP_TRADES, ","),
    "flat": soak.FLAT_GROWTH_MIB,
    "backlog": format(BACKLOG_EVERY, ","),
}
_PREAMBLE += """\
- **chaos** (``--mode chaos``, not part of the default run; ``benchmarks/chaos.py`` says
  it all): the four venues, the Rails private stream and the Synthetix user feed from the
  simulator (in a process of its own) at a steady rate into one FeedManager with a SQLite
  sink, for %(chaos_minutes)g minutes by default, with a seeded fault every few seconds
  (drops, close codes 1000/1001/1011, handshakes refused with ``Retry-After``, stalls that
  only pings notice, malformed frames, token expiry, a locked sink), one at a time, each
  waited for to recover.  Checked at the end, per venue, stream and symbol, against the
  venues' tapes: duplicates, order violations and trades lost outside a reported ``Gap``
  (all must be 0), the sink holding each delivered trade once, every fault recovered
  (the table gives the recovery times per kind), threads back to their number before the
  start, and (runs of %(judged)g s or more) resident memory FLAT: its Theil-Sen trend after
  the warm-up rises by less than %(chaos_flat).1f MiB.
""" % {"chaos_minutes": chaos.DEFAULT_MINUTES, "judged": chaos.MEMORY_JUDGED_AFTER, "chaos_flat": chaos.FLAT_GROWTH_MIB}
_PREAMBLE += """\
- **hotpath** (``python -m benchmarks.hotpath``, ``benchmarks/hotpath.py`` says it all):
  the hot path's stages in one process, no sockets or threads, over the throughput
  server's Dopp frames: microseconds of CPU per trade of ``json.loads`` (what the floor
  parses with), ``parse`` (the adapter), ``pipeline`` (de-duplication, gaps, the batch),
  ``dispatch`` (the hand-off and one callback) and ``total``, the best of many runs, so
  a lever worth a few per cent shows where the socket runs' spread hides it (a stage
  whose code did not change moves by up to 5 %).  With ``--baseline`` the row of
  another checkout (measured in turns with this one) and the change follow.
"""


def machine() -> dict[str, Any]:
    """Where and what was measured: date, CPU, cores, versions, tradefeed commit."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in ("websocket-client", "websockets", "orjson", "cryptofeed", "uvloop"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    from tradefeed import __version__

    return {
        "date": datetime.date.today().isoformat(),
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "load": os.getloadavg()[0],
        "python": platform.python_version(),
        "tradefeed": __version__,
        "commit": _commit(),
        "source": source_digest(),
        **versions,
    }


def source_digest() -> str:
    """A digest of tradefeed's source files: the library may change under a long run
    (each consumer process imports it afresh)."""
    import tradefeed

    root = Path(tradefeed.__file__).parent
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _commit() -> str:
    """The checkout's commit, with ``+ uncommitted changes`` when tradefeed/ differs."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "tradefeed"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def _consumers(scenario: Scenario) -> list[str]:
    return list(dict.fromkeys(name for results in scenario.runs for name in results))


def summarize(scenario: Scenario) -> list[dict[str, Any]]:
    """One row of figures per consumer (see the preamble of ``RESULTS.rst``)."""
    summary = {
        "throughput": _throughput_rows, "latency": _latency_rows, "idle": _idle_rows, "soak": soak.summarize,
        "chaos": chaos.summarize,
    }[  # fmt: skip
        scenario.mode
    ]
    return summary(scenario)


def _throughput_rows(scenario: Scenario) -> list[dict[str, Any]]:
    trades = scenario.params["trades"]
    rows = []
    for name in _consumers(scenario):
        done = [r[name] for r in scenario.runs if r.get(name, {}).get("complete")]
        rates = [trades / result["elapsed_s"] for result in done]
        ratios = [
            (trades / r[name]["elapsed_s"]) / (trades / r["floor"]["elapsed_s"])
            for r in scenario.runs
            if r.get(name, {}).get("complete") and r.get("floor", {}).get("complete")
        ]
        rows.append(
            {
                "consumer": name,
                "runs": len(scenario.runs),
                "failed": len(scenario.runs) - len(done),
                "rate_median": statistics.median(rates) if rates else None,
                "rate_min": min(rates, default=None),
                "rate_max": max(rates, default=None),
                "cpu_us_per_trade": statistics.median(r["cpu_s"] / trades * 1e6 for r in done) if done else None,
                "peak_rss_mib": max((r["peak_rss_kib"] / 1024 for r in done), default=None),
                "x_floor": statistics.median(ratios) if ratios else None,
                "errors": _errors(scenario, name),
            }
        )
    return rows


def _latency_rows(scenario: Scenario) -> list[dict[str, Any]]:
    rows = []
    for name in _consumers(scenario):
        done = [r[name] for r in scenario.runs if r.get(name, {}).get("latency_us")]
        row: dict[str, Any] = {"consumer": name, "runs": len(scenario.runs), "failed": len(scenario.runs) - len(done)}
        for key, _ in LATENCY_POINTS:  # the median over repetitions of each run's figure
            row[key + "_us"] = statistics.median(r["latency_us"][key] for r in done) if done else None
        row["cpu_percent"] = statistics.median(100 * r["cpu_s"] / r["elapsed_s"] for r in done) if done else None
        trades = scenario.params["trades"]
        row["cpu_us_per_trade"] = statistics.median(r["cpu_s"] / trades * 1e6 for r in done) if done else None
        row["peak_rss_mib"] = max((r["peak_rss_kib"] / 1024 for r in done), default=None)
        row["missing"] = sum(r.get("missing", 0) for r in done)
        row["errors"] = _errors(scenario, name)
        rows.append(row)
    return rows


def _idle_rows(scenario: Scenario) -> list[dict[str, Any]]:
    keys = ("connections", "opened", "connect_s", "kib_per_connection", "threads", "cpu_percent", "status_change_count")
    rows = []
    for name in _consumers(scenario):
        result = scenario.runs[0][name]
        failed = result.get("cpu_percent") is None or result.get("opened") != result.get("connections")
        row = {"consumer": name, **{key: result.get(key) for key in keys}, "runs": 1, "failed": int(failed)}
        rows.append({**row, "errors": result.get("errors", [])})
    return rows


def _errors(scenario: Scenario, name: str) -> list[str]:
    return [error for r in scenario.runs for error in r.get(name, {}).get("errors", [])][:3]


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for cells in [headers, *rows]:
        first, *rest = cells
        lines.append("  ".join([first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:])]))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _title(scenario: Scenario) -> str:
    p = scenario.params
    if scenario.mode == "throughput":
        frame = "trade" if p["per_frame"] == 1 else "trades"
        return "%d %s/frame, %s trades per run, %d repetition(s)" % (p["per_frame"], frame, format(p["trades"], ","), len(scenario.runs))
    if scenario.mode == "latency":
        rates = [r["server_rate"] for results in scenario.runs for r in results.values() if "server_rate" in r]
        achieved = "server achieved %s frames/s (median)" % (
            format(statistics.median(rates), ",.0f") if rates else "-"
        )
        return "%s frames/s, 1 trade/frame, %s trades per run (first %s warm-up), %d repetition(s); %s" % (
            format(p["rate"], ","), format(p["trades"], ","), format(p["warmup"], ","), len(scenario.runs), achieved
        )
    if scenario.mode == "soak":
        return soak.title(scenario)
    if scenario.mode == "chaos":
        return chaos.title(scenario)
    return "%s connections, measured over %g s" % (format(p["connections"], ","), p["window"])


def _scenario_lines(scenario: Scenario) -> list[str]:
    rows = summarize(scenario)
    if scenario.mode == "throughput":
        headers = ["consumer", "trades/s median", "min", "max", "CPU us/trade", "peak RSS MiB", "x floor"]
        body = [
            [
                label(r["consumer"]),
                _number(r["rate_median"], ",.0f"),
                _number(r["rate_min"], ",.0f"),
                _number(r["rate_max"], ",.0f"),
                _number(r["cpu_us_per_trade"], ".1f"),
                _number(r["peak_rss_mib"], ".1f"),
                _number(r["x_floor"], ".2f"),
            ]
            for r in rows
        ]
    elif scenario.mode == "latency":
        headers = ["consumer", "p50 us", "p99 us", "p99.9 us", "max us", "CPU %", "CPU us/trade", "peak RSS MiB", "missing"]
        body = [
            [label(r["consumer"])]
            + [_number(r[key + "_us"], ",.0f") for key, _ in LATENCY_POINTS]
            + [_number(r["cpu_percent"], ".0f"), _number(r["cpu_us_per_trade"], ".1f"), _number(r["peak_rss_mib"], ".1f")]
            + [str(r["missing"])]
            for r in rows
        ]
    elif scenario.mode == "soak":
        headers, body = soak.table(rows[0])
    elif scenario.mode == "chaos":
        headers, body = chaos.table(rows[0])
    else:
        headers = ["consumer", "open", "connect s", "KiB/conn", "threads", "CPU %", "status events"]
        body = [
            [
                IDLE_CONSUMERS.get(r["consumer"], r["consumer"]),
                "%s/%s" % (r["opened"], r["connections"]),
                _number(r["connect_s"], ".1f"),
                _number(r["kib_per_connection"], ".1f"),
                str(r["threads"] if r["threads"] is not None else "-"),
                _number(r["cpu_percent"], ".2f"),
                str(r["status_change_count"] if r["status_change_count"] is not None else "-"),
            ]
            for r in rows
        ]
    lines = [_title(scenario), ""] + _table(headers, body)
    if scenario.mode == "soak":
        lines += [""] + [line for row in rows for line in soak.verdict(row)]
    if scenario.mode == "chaos":
        lines += [""] + [line for row in rows for line in chaos.verdict(row)]
    for r in rows:
        for error in r["errors"]:
            lines.append("  ! %s: %s" % (r["consumer"], error))
        if r.get("failed"):
            lines.append("  ! %s: %d of %d run(s) did not finish" % (r["consumer"], r["failed"], r["runs"]))
    return lines


def tables(scenarios: list[Scenario]) -> dict[str, str]:
    """Text tables by mode, in the order the modes were run."""
    by_mode: dict[str, list[str]] = {}
    for scenario in scenarios:
        lines = by_mode.setdefault(scenario.mode, [])
        if lines:
            lines.append("")
        lines += _scenario_lines(scenario)
    return {mode: "\n".join(lines) for mode, lines in by_mode.items()}


def write_json(path: str, info: dict[str, Any], command: str, scenarios: list[Scenario]) -> None:
    """Everything measured: raw per-run results and the summaries."""
    document = {
        "machine": info,
        "command": command,
        "scenarios": [
            {**dataclasses.asdict(s), "summary": summarize(s)}
            for s in scenarios
        ],
    }
    with open(path, "w") as out:
        json.dump(document, out, indent=1)
        out.write("\n")


# -- RESULTS.rst -------------------------------------------------------------------------
#
# The file is the preamble, then sections, each opened by a ".. section: <key>" comment
# (key: date and machine); a section holds parts, each opened by ".. mode: <mode>".
# Writing replaces the parts of the modes just measured and keeps the others, except in
# the modes of _ACCUMULATING: there each run is one lever's before and after, and the new
# run goes above the day's earlier ones, so that the gain of every lever stays on record.

_ACCUMULATING = frozenset({"hotpath"})

_SECTION = re.compile(r"^\.\. section: (.+)$", re.M)
_PART = re.compile(r"^\.\. mode: (\w+)$", re.M)


def _split(text: str, marker: re.Pattern[str]) -> tuple[str, dict[str, str]]:
    """The text before the first *marker*, and each marked block by its key (in order)."""
    matches = list(marker.finditer(text))
    head = text[: matches[0].start()] if matches else text
    blocks = {}
    for match, following in zip(matches, matches[1:] + [None]):
        blocks[match.group(1)] = text[match.start() : following.start() if following else len(text)]
    return head, blocks


def _heading(text: str, underline: str) -> str:
    return "%s\n%s\n" % (text, underline * len(text))


def _part(mode: str, info: dict[str, Any], command: str, table: str) -> str:
    optional = ", ".join("%s %s" % (k, info[k]) for k in ("orjson", "cryptofeed", "uvloop") if info.get(k))
    provenance = "%s, load average %.1f; Python %s, websocket-client %s, websockets %s%s; tradefeed %s at %s; ``%s``." % (
        info["time"], info["load"], info["python"], info["websocket-client"], info["websockets"],
        ", " + optional if optional else "", info["tradefeed"], info["commit"], command,
    )  # fmt: skip
    if info.get("source_changed"):
        provenance += "  **tradefeed's source changed during this run: its rows mix versions.**"
    indented = "\n".join("    " + line if line else "" for line in table.splitlines())
    return ".. mode: %s\n\n%s\n%s\n\n::\n\n%s\n\n" % (mode, _heading(_MODE_TITLES[mode], "~"), provenance, indented)


def update_results(info: dict[str, Any], command: str, by_mode: dict[str, str], path: Path = RESULTS) -> None:
    """Write *by_mode* tables into the section for today and this machine, replacing
    the parts of the same modes (a ``hotpath`` run goes above the day's earlier ones);
    a new section goes first.  The preamble is rewritten
    (it describes the current tool)."""
    _, sections = _split(path.read_text() if path.exists() else "", _SECTION)
    title = "%s: %s, %d cores" % (info["date"], info["cpu"], info["cores"])
    if info.get("pinned"):  # --pin: its own section, beside the unpinned figures of the day
        title += ", server and client pinned to a core each"
    _, parts = _split(sections.pop(title, ""), _PART)
    for mode, table in by_mode.items():
        part, earlier = _part(mode, info, command, table), parts.get(mode, "")
        heading = ".. mode: %s\n\n%s\n" % (mode, _heading(_MODE_TITLES[mode], "~"))
        if mode in _ACCUMULATING and earlier.startswith(heading):  # the earlier runs below, without their heading
            part = part.rstrip("\n") + "\n\n" + earlier[len(heading) :]
        parts[mode] = part
    # each part ends in a blank line (the file's last part lost it: the file is stripped)
    ordered = [parts[mode].rstrip("\n") + "\n\n" for mode in _MODE_TITLES if mode in parts]
    section = ".. section: %s\n\n%s\n%s" % (title, _heading(title, "-"), "".join(ordered))
    path.write_text(_PREAMBLE + "\n" + (section + "".join(sections.values())).rstrip("\n") + "\n")
