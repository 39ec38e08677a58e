"""The ``tradefeed`` command: ``demo`` and ``sim``.

``main(argv=None) -> int`` is the entry point (``console_scripts`` and
``python -m tradefeed``).  This is the only module that configures logging and the
only one that writes to stdout/stderr directly.  Exit codes: 0 ok (also after Ctrl-C
or SIGTERM), 1 a runtime failure (a feed ended on an error), 2 a usage or
configuration error.  Errors are one line on stderr; ``--debug`` adds tracebacks.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import signal
import sys
import threading
from typing import Any, Callable, TextIO

from . import __version__
from .adapters import REGISTRY
from .exceptions import ConfigError, TradefeedError
from .manager import FeedManager
from .models import Status, StatusEvent, Trade

__all__ = ["main"]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

CSV_COLUMNS = (
    "time_utc",
    "timestamp_ms",
    "venue",
    "symbol",
    "trade_id",
    "side",
    "price",
    "amount",
    "fee",
    "fee_currency",
    "liquidity",
    "sequence",
)


def iso_utc(timestamp_ms: int) -> str:
    """``2026-01-01T00:00:00.123Z`` for a Unix-ms instant."""
    when = dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (timestamp_ms % 1000)


class TradeWriter:
    """Writes trades to a text stream as ``table``, ``jsonl`` or ``csv``."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream = stream
        self.format = fmt
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(CSV_COLUMNS)
        elif fmt == "table":
            stream.write(
                "%-23s %-10s %-20s %-4s %16s %14s  %s\n"
                % ("time (UTC)", "venue", "symbol", "side", "amount", "price", "trade id")
            )

    def write(self, trade: Trade) -> None:
        if self.format == "jsonl":
            self.stream.write(json.dumps(trade.to_dict(), separators=(",", ":")) + "\n")
        elif self._csv is not None:
            self._csv.writerow(
                (
                    iso_utc(trade.timestamp_ms),
                    trade.timestamp_ms,
                    trade.venue,
                    trade.symbol,
                    trade.trade_id,
                    trade.side.value,
                    trade.price,
                    trade.amount,
                    "" if trade.fee is None else trade.fee,
                    trade.fee_currency or "",
                    "" if trade.liquidity is None else trade.liquidity.value,
                    "" if trade.sequence is None else trade.sequence,
                )
            )
        else:
            self.stream.write(
                "%-23s %-10s %-20s %-4s %16s %14s  %s\n"
                % (
                    iso_utc(trade.timestamp_ms),
                    trade.venue,
                    trade.symbol,
                    trade.side.value,
                    trade.amount,
                    trade.price,
                    trade.trade_id,
                )
            )
        self.stream.flush()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradefeed", description="Real-time crypto trade feeds, normalized."
    )
    parser.add_argument("--version", action="version", version="tradefeed " + __version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection events to stderr")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="stream trades from the built-in simulator")
    demo.add_argument("--venue", default="dopp", choices=sorted(REGISTRY) + ["all"], help="venue to show (default dopp)")
    demo.add_argument("--limit", type=_positive_int, help="stop after N trades")
    demo.add_argument("--duration", type=_positive_float, help="stop after S seconds")
    demo.add_argument("--format", default="table", choices=("table", "jsonl", "csv"), help="output format")
    demo.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    demo.add_argument("--rate", type=_positive_float, default=20.0, help="simulated trades per second per venue (default 20)")

    sim = sub.add_parser("sim", help="run the simulator in the foreground and print its URLs")
    sim.add_argument("--venue", action="append", choices=sorted(REGISTRY), help="venue to serve (repeatable; default all)")
    sim.add_argument("--port", type=int, default=0, help="port for the (first) venue; default: any free port")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--rate", type=float, default=200.0, help="trades per second per venue (default 200)")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _configure_logging(verbose: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not debug:
        # websocket-client logs every close at ERROR; tradefeed reports closes itself
        logging.getLogger("websocket").setLevel(logging.CRITICAL)


def _load_simulator() -> Any:
    try:
        from .simulator import Simulator
    except ImportError as err:
        raise ConfigError("the simulator needs the 'sim' extra: pip install 'tradefeed[sim]' (%s)" % err) from err
    return Simulator


class _Interrupted(Exception):
    pass


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Interrupted()


def _wait(event: threading.Event, timeout: float | None) -> None:
    """Wait for *event*; Ctrl-C and SIGTERM end the wait normally."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        event.wait(timeout)
    except (KeyboardInterrupt, _Interrupted):
        log.info("interrupted")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    Simulator = _load_simulator()
    venues = sorted(REGISTRY) if args.venue == "all" else [args.venue]
    writer = TradeWriter(out, args.format)
    done = threading.Event()
    count = [0]
    with Simulator(seed=args.seed, rate=args.rate, venues=venues, history=8) as sim:
        manager = FeedManager()
        for venue in venues:
            manager.add_feed(venue, **sim.feed_params(venue))

        @manager.on_trade
        def show(trade: Trade) -> None:
            if done.is_set():
                return
            try:
                writer.write(trade)
            except BrokenPipeError:  # `tradefeed demo | head`
                done.set()
                return
            count[0] += 1
            if args.limit and count[0] >= args.limit:
                done.set()

        ended: set[str] = set()

        @manager.on_status
        def status(event: StatusEvent) -> None:
            log.info("%s %s %s", event.feed, event.status.value, dict(event.detail) or "")
            if event.status is Status.STOPPED:
                ended.add(event.feed)
                if len(ended) == len(venues):  # every feed ended on its own: nothing more to show
                    done.set()

        manager.on_error(lambda err: log.warning("%s", err))
        with manager:
            _wait(done, args.duration)
        manager.join(timeout=10)
    return EXIT_OK


def cmd_sim(args: argparse.Namespace, out: TextIO) -> int:
    Simulator = _load_simulator()
    venues = args.venue or sorted(REGISTRY)
    ports = {venues[0]: args.port} if args.port else None
    with Simulator(seed=args.seed, rate=args.rate, venues=venues, ports=ports) as sim:
        for venue in venues:
            out.write("%-10s %s\n" % (venue, sim.url(venue)))
        out.write("simulator running; Ctrl-C to stop\n")
        out.flush()
        _wait(threading.Event(), None)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {"demo": cmd_demo, "sim": cmd_sim}


def main(argv: list[str] | None = None) -> int:
    """Run the ``tradefeed`` command; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _configure_logging(args.verbose, args.debug)
    try:
        return COMMANDS[args.command](args, sys.stdout)
    except ConfigError as err:
        _report(err, args.debug)
        return EXIT_USAGE
    except TradefeedError as err:
        _report(err, args.debug)
        return EXIT_FAILURE
    except OSError as err:
        _report(err, args.debug)
        return EXIT_FAILURE


def _report(err: BaseException, debug: bool) -> None:
    if debug:
        log.exception("tradefeed: %s", err)
    sys.stderr.write("tradefeed: error: %s\n" % err)
