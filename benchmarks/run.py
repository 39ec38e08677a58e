"""tradefeed against the bare websocket-client loop, websockets and cryptofeed, side by side.

    python benchmarks/run.py                       # throughput, latency, idle: about 5 minutes on 2 cores
    python benchmarks/run.py --mode soak           # memory over 10 M trades: 2 minutes or more
    python benchmarks/run.py --mode chaos          # every venue, a fault every few seconds: 10 minutes
    python benchmarks/run.py --mode chaos --chaos-minutes 60 --write-results
    python benchmarks/run.py --mode throughput --repeat 5
    python benchmarks/run.py --quick               # the default modes, small: under a minute
    python benchmarks/run.py --pin --mode throughput  # server and client on a core each: steadier
    python benchmarks/run.py --consumers floor,tradefeed-thread --mode latency
    python benchmarks/run.py --json out.json --write-results
    python -m benchmarks.hotpath                   # the hot path's stages in one process (benchmarks/hotpath.py)

Servers and clients each run in their own process on 127.0.0.1; see RESULTS.rst for what
every column means.  Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import chaos, consumers, harness, report, soak  # noqa: E402
from benchmarks.harness import Scenario  # noqa: E402
from benchmarks.idle import IDLE_CONSUMERS  # noqa: E402

#: the modes of ``--mode all`` (the default)
MODES = ("throughput", "latency", "idle")
#: modes run only when named: a soak takes minutes, a chaos soak ten or more
EXTRA_MODES = ("soak", "chaos")
#: ``--quick``: trades per soak unless --soak-trades is given
QUICK_SOAK_TRADES = 1_000_000
#: ``--quick``: minutes of a chaos soak unless --chaos-minutes is given
QUICK_CHAOS_MINUTES = 1.0
#: trades per throughput run, by trades per frame (about a second for the floor)
DEFAULT_TRADES = {1: 50_000, 20: 150_000}


def _positive_ints(text: str) -> list[int]:
    """``1,20`` -> [1, 20]; every value a whole number >= 1."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("expected positive whole numbers, not %r" % text)
    return values


def _positive_int(text: str) -> int:
    (value,) = _positive_ints(text)
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )  # fmt: skip
    parser.add_argument(
        "--mode", choices=MODES + EXTRA_MODES + ("all",), default="all", help="all: %s (default)" % ", ".join(MODES)
    )
    parser.add_argument("--repeat", type=_positive_int, default=3, help="repetitions of throughput and latency (default 3)")
    parser.add_argument(
        "--consumers",
        help="throughput and latency: a comma-separated subset of %s (the floor always runs)"
        % ", ".join(consumers.available()),
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on CPU 0, each consumer on CPU 1: steadier figures; a client's threads share one core",
    )
    parser.add_argument("--quick", action="store_true", help="small loads, one repetition: a check, not a measurement")
    group = parser.add_argument_group("throughput")
    group.add_argument("--per-frame", type=_positive_ints, default=[1, 20], help="trades per frame (default 1,20)")
    group.add_argument("--trades", type=_positive_int, help="trades per run (default 50,000 at 1/frame, 150,000 at 20/frame)")
    group = parser.add_argument_group("latency")
    group.add_argument("--rates", type=_positive_ints, default=[1000, 10000], help="frames/s (default 1000,10000)")
    group.add_argument("--seconds", type=float, default=2.0, help="length of a paced run (default 2)")
    group = parser.add_argument_group("idle")
    group.add_argument("--connections", type=_positive_ints, default=[100, 500, 1000], help="default 100,500,1000")
    group.add_argument("--window", type=float, default=10.0, help="seconds measured once all are open (default 10)")
    group = parser.add_argument_group("soak")
    group.add_argument(
        "--soak-trades",
        type=_positive_int,
        help="trades counted (default %s; %s with --quick)" % (format(soak.DEFAULT_TRADES, ","), format(QUICK_SOAK_TRADES, ",")),
    )
    group.add_argument(
        "--sample-every",
        type=_positive_int,
        default=soak.DEFAULT_SAMPLE_EVERY,
        help="trades between memory samples (default %s)" % format(soak.DEFAULT_SAMPLE_EVERY, ","),
    )
    group = parser.add_argument_group("chaos")
    group.add_argument(
        "--chaos-minutes",
        type=float,
        help="length of the chaos soak (default %g; %g with --quick)" % (chaos.DEFAULT_MINUTES, QUICK_CHAOS_MINUTES),
    )
    group.add_argument("--chaos-seed", type=int, default=1, help="seeds the venues' tapes and the faults (default 1)")
    group.add_argument(
        "--chaos-rate", type=float, default=chaos.DEFAULT_RATE, help="trades/s per venue (default %g)" % chaos.DEFAULT_RATE
    )
    group.add_argument(
        "--fault-every",
        type=float,
        default=chaos.DEFAULT_FAULT_EVERY,
        help="seconds between faults, +/- 50 %% (default %(default)g)",
    )
    group = parser.add_argument_group("output")
    group.add_argument("--json", metavar="FILE", help="write every result as JSON")
    group.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.rst")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.seconds, args.window = 1, 1.0, 3.0
        args.connections = [min(args.connections)]
    if not args.soak_trades:
        args.soak_trades = QUICK_SOAK_TRADES if args.quick else soak.DEFAULT_TRADES
    if not args.chaos_minutes:
        args.chaos_minutes = QUICK_CHAOS_MINUTES if args.quick else chaos.DEFAULT_MINUTES
    if args.chaos_minutes <= 0 or args.chaos_rate <= 0 or args.fault_every <= 0:
        parser.error("--chaos-minutes, --chaos-rate and --fault-every must be > 0")
    if args.soak_trades % soak.PER_FRAME:
        parser.error("--soak-trades (%d) must be a multiple of %d (trades per frame)" % (args.soak_trades, soak.PER_FRAME))
    available = consumers.available()
    if args.consumers:
        chosen = args.consumers.split(",")
        unknown = sorted(set(chosen) - set(available))
        if unknown:
            parser.error("unknown or unavailable consumer(s): %s" % ", ".join(unknown))
        args.consumers = [name for name in available if name in chosen or name == "floor"]
    else:
        args.consumers = available
    for per_frame in args.per_frame:
        trades = _trades(args, per_frame)
        if trades % per_frame:
            parser.error("--trades (%d) must be a multiple of every --per-frame value" % trades)
    return args


def _trades(args: argparse.Namespace, per_frame: int) -> int:
    """Trades per throughput run: --trades, else the default (a tenth with --quick),
    rounded down to whole frames."""
    if args.trades:
        return int(args.trades)
    trades = DEFAULT_TRADES.get(per_frame, 10_000 * per_frame)
    if args.quick:
        trades //= 10
    return max(per_frame, trades // per_frame * per_frame)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _check_server(scenario: Scenario) -> None:
    """Warn when the server may have limited a client: ``discard`` must lead clearly."""
    rates = {row["consumer"]: row["rate_median"] for row in report.summarize(scenario) if row["rate_median"]}
    fastest_client = max((rate for name, rate in rates.items() if name != "discard"), default=0.0)
    if "discard" in rates and rates["discard"] < 2 * fastest_client:
        _progress(
            "warning: the server sent only %.1fx what the fastest client read at %d/frame; it may be the bottleneck"
            % (rates["discard"] / fastest_client, scenario.params["per_frame"])
        )


def run(args: argparse.Namespace) -> list[Scenario]:
    """Every scenario the arguments ask for, in mode order."""
    modes = MODES if args.mode == "all" else (args.mode,)
    scenarios = []
    if "throughput" in modes:
        for per_frame in args.per_frame:
            scenario = harness.throughput(args.consumers, _trades(args, per_frame), per_frame, args.repeat, log=_progress)
            _check_server(scenario)
            scenarios.append(scenario)
    if "latency" in modes:
        for rate in args.rates:
            scenarios.append(harness.latency(args.consumers, rate, args.seconds, args.repeat, log=_progress))
    if "idle" in modes:
        for connections in args.connections:
            scenarios.append(harness.idle(list(IDLE_CONSUMERS), connections, args.window, log=_progress))
    if "soak" in modes:
        scenarios.append(soak.soak(args.soak_trades, args.sample_every, log=_progress))
    if "chaos" in modes:
        scenarios.append(
            chaos.chaos(
                args.chaos_minutes * 60, seed=args.chaos_seed, rate=args.chaos_rate, fault_every=args.fault_every, log=_progress
            )
        )
    return scenarios


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python benchmarks/run.py" + "".join(" " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    info = report.machine()
    print(
        "%(date)s %(time)s, %(cpu)s, %(cores)d cores, load average %(load).1f, Python %(python)s, "
        "websocket-client %(websocket-client)s, tradefeed %(tradefeed)s at %(commit)s" % info
    )
    if args.pin:
        harness.pin()
        info["pinned"] = True
        print("pinned: servers on CPU 0, consumers on CPU 1")
    scenarios = run(args)
    if report.source_digest() != info["source"]:
        info["source_changed"] = True
        _progress("warning: tradefeed's source changed during the run; its results mix versions")
    by_mode = report.tables(scenarios)
    for mode, table in by_mode.items():
        print("\n%s\n%s\n\n%s" % (mode.upper(), "=" * len(mode), table))
    if args.json:
        report.write_json(args.json, info, command, scenarios)
    if args.write_results:
        report.update_results(info, command, by_mode)
        print("\nwrote %s" % report.RESULTS)
    failed = sum(row.get("failed", 0) for s in scenarios for row in report.summarize(s))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
