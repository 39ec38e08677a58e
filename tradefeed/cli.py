"""The ``tradefeed`` command: ``run``, ``check``, ``venues``, ``query``, ``record``,
``replay``, ``demo`` and ``sim``.

``main(argv=None) -> int`` is the entry point (``console_scripts`` and
``python -m tradefeed``).  This is the only module that configures logging and the
only one that writes to stdout/stderr directly.  Exit codes: 0 ok (also after Ctrl-C
or SIGTERM, once outputs are flushed, and for a ``--shard`` without feeds, with a
warning), 1 a runtime failure (a feed ended on an error), 2 a usage or configuration
error, 128 + the signal's number (130 SIGINT, 143 SIGTERM) when a Ctrl-C or SIGTERM
during a run's stop abandoned what was still queued for the outputs.  On Windows, Ctrl-Break
(SIGBREAK, 149) takes SIGTERM's place (see :mod:`tradefeed._console`).  Errors are one
clear line on stderr (a configuration error one line per problem); ``--debug`` adds
tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import logging
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, TextIO

from . import __version__, _args, _console, _record_cli, _sim_cli, _watch
from . import config as config_module
from ._args import positive_float, positive_int
from .adapters import REGISTRY
from .exceptions import ConfigError, TradefeedError
from .logs import LOG_FORMATS, JsonFormatter, TextFormatter, formatter
from .manager import FeedManager
from .models import Trade
from .output import FORMATS, TradeWriter
from .signing import EXTRA

__all__ = ["main"]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: an output was left with trades it did not write (one line per output on stderr)
EXIT_UNWRITTEN = 3
#: seconds a run waits for the callbacks and sinks to finish once stopped
STOP_TIMEOUT = 10.0
#: seconds into a stop after which the run tells how to abandon it
SLOW_STOP = 1.0
#: seconds an abandoned stop still waits for the threads (a stuck sink never ends)
ABANDON_WAIT = 1.0


def _build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _args.Parser(prog="tradefeed", description="Real-time crypto trade feeds, normalized.")
    parser.add_argument("--version", action="version", version="tradefeed " + __version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection events to stderr")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def streaming(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--format",
            choices=FORMATS,
            help="output format (default: the config's outputs, else table; with --output: csv for a .csv FILE, else jsonl)",
        )
        p.add_argument(
            "--output", metavar="FILE", help="append trades to FILE (created with its directory) instead of the config's outputs"
        )
        p.add_argument("--limit", type=positive_int, help="stop after N trades")
        p.add_argument("--duration", type=positive_float, help="stop after S seconds")
        p.add_argument("--quiet", action="store_true", help="no status line, only warnings and errors")
        p.add_argument(
            "--log-format", choices=LOG_FORMATS, help="log records on stderr as text (default) or one JSON object per line"
        )
        p.add_argument(
            "--metrics-port", type=_args.port, metavar="P", help="serve Prometheus /metrics and /healthz on port P (0: any free port)"
        )
        p.add_argument("--metrics-host", metavar="H", help="address for --metrics-port (default 127.0.0.1: loopback only)")

    run = sub.add_parser("run", help="stream the feeds of a YAML config until stopped")
    run.add_argument("config", help="the YAML configuration file")
    streaming(run)
    _record_cli.add_shard_arguments(run)

    check = sub.add_parser("check", help="validate a YAML config and print every problem")
    check.add_argument("config")

    sub.add_parser("venues", help="list the venues with their parameters and defaults")

    from .sinks.sqlite import add_query_command

    add_query_command(sub)
    _record_cli.add_record_commands(sub)

    demo = sub.add_parser("demo", help="stream trades from the built-in simulator")
    demo.add_argument("--venue", default="dopp", choices=sorted(REGISTRY) + ["all"], help="venue to show (default dopp)")
    demo.add_argument("--config", help="demo this YAML config's feeds against the simulator")
    demo.add_argument("--seed", type=_args.whole_number, default=1, help="simulator seed (default 1)")
    demo.add_argument(
        "--rate", type=_args.rate, default=20.0, help="simulated trades per second per venue (default 20; 0: only the initial history)"
    )
    streaming(demo)

    sim = _sim_cli.add_sim_arguments(sub)
    _record_cli.add_sim_replay_arguments(sim)
    from .simulator.admin import add_admin_arguments

    add_admin_arguments(sim)
    return parser


def _configure_logging(level: int, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter())  # redacts credentials, as JsonFormatter does
    logging.basicConfig(level=level, handlers=[handler])
    if not debug:
        # websocket-client logs every close at ERROR; tradefeed reports closes itself
        logging.getLogger("websocket").setLevel(logging.CRITICAL)
        # the connections' INFO lines repeat their status events, which -v shows as sentences
        logging.getLogger("tradefeed.connection").setLevel(logging.WARNING)


def _set_log_format(name: str) -> None:
    """Switch the stderr handler that :func:`_configure_logging` installed to *name*'s
    format (``text`` or ``json``)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, (TextFormatter, JsonFormatter)):
            handler.setFormatter(formatter(name))


_json_logs = _watch.json_logs
_say_error = _watch.say_error


def _metrics_settings(args: argparse.Namespace, config: config_module.Config | None) -> dict[str, Any] | None:
    """serve_metrics' arguments: the config's ``settings.metrics``, with --metrics-port
    and --metrics-host winning."""
    metrics = dict(config.metrics or {}) if config is not None else {}
    if args.metrics_port is not None:
        metrics["port"] = args.metrics_port
    if args.metrics_host is not None:
        if "port" not in metrics:
            raise ConfigError("--metrics-host needs --metrics-port (or settings.metrics.port in the config)")
        metrics["host"] = args.metrics_host
    return metrics or None


# -- streaming (run and demo) ---------------------------------------------------------


class _Interrupted(Exception):
    """SIGTERM (or, while streaming, SIGINT), raised on the main thread."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        #: the signal received
        self.signum = signum


def _interrupt(signum: int, frame: Any) -> None:
    raise _Interrupted(signum)


@contextlib.contextmanager
def _writers(args: argparse.Namespace, outputs: tuple[config_module.OutputConfig, ...], out: TextIO) -> Iterator[list[TradeWriter]]:
    """The writers for ``--output``/``--format`` or the config's outputs (files appended)."""
    if args.output:
        outputs = (config_module.OutputConfig("file", _args.output_format(args.output, args.format), args.output),)
    elif args.format or not outputs:
        outputs = (config_module.OutputConfig("stdout", args.format or "table"),)
    else:  # the config's other outputs are sinks, attached to the manager
        outputs = tuple(o for o in outputs if o.type == "stdout")
    with contextlib.ExitStack() as stack:
        writers = []
        for output in outputs:
            if output.type == "stdout":
                writers.append(TradeWriter(out, output.format, defer_header=True))
                continue
            assert output.path is not None
            stream, fresh = _args.open_output(output.path)
            stack.enter_context(stream)
            writers.append(TradeWriter(stream, output.format, header=fresh, defer_header=True))
        yield writers


def _stream(manager: FeedManager, writers: list[TradeWriter], args: argparse.Namespace) -> int:
    """Run *manager* until --limit, --duration, Ctrl-C/SIGTERM or every feed has ended."""
    done = threading.Event()
    counts: dict[str, int] = {}
    lag_ms: dict[str, int] = {}
    total = [0]
    interrupted = False

    @manager.on_trade
    def write(trade: Trade) -> None:
        if done.is_set():
            return
        try:
            for writer in writers:
                writer.write(trade)
        except BrokenPipeError:  # `tradefeed run ... | head`
            done.set()
            return
        total[0] += 1
        counts[trade.venue] = counts.get(trade.venue, 0) + 1
        lag_ms[trade.venue] = trade.received_ns // 1_000_000 - trade.timestamp_ms
        if args.limit and total[0] >= args.limit:
            # the sinks get each batch after this callback: drop the rest of it and the
            # queue now, so they too receive exactly --limit trades
            manager.stop(drain=False)
            done.set()

    watch = _watch.FeedWatch(manager, _say_error, all_ended=done)  # then nothing more will come
    status_line = _console.StatusLine(sys.stderr) if sys.stderr.isatty() and not args.quiet else None
    deadline = None if args.duration is None else time.monotonic() + args.duration
    main_thread = threading.current_thread() is threading.main_thread()
    signals = (signal.SIGINT, *_console.stop_signals()) if main_thread else ()
    previous = {signum: signal.signal(signum, _interrupt) for signum in signals}
    abandoned: int | None = None
    try:
        manager.start()
        seen = dict(counts)
        while not done.is_set():
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0 or done.wait(wait):
                break
            if status_line is not None:
                _print_status(status_line, manager, counts, seen, lag_ms)
                seen = dict(counts)
    except _Interrupted:
        interrupted = True
        log.info("interrupted; stopping")
    finally:
        if status_line is not None:
            status_line.end()
        try:
            abandoned = _stop(manager)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    unwritten = _unwritten(manager)
    if abandoned is not None:
        return abandoned
    code = watch.exit_code(ran=not interrupted)
    return EXIT_UNWRITTEN if unwritten else code


def _unwritten(manager: FeedManager) -> bool:
    """One line on stderr per sink that did not write every trade it was handed (still
    pending when the stop ran out of time, dropped at its limit, or rejected as poison);
    True if there was one."""
    found = False
    for name, stats in manager.sink_stats().items():
        parts = [
            "%d %s" % (count, what)
            for count, what in (
                (stats.pending, "pending at stop"),
                (stats.dropped, "dropped at its limit"),
                (stats.rejected, "rejected"),
            )
            if count
        ]
        if parts:
            found = True
            total = stats.pending + stats.dropped + stats.rejected
            _say_error("sink %s: %d trades not written (%s)" % (name, total, ", ".join(parts)))
    return found


def _stop(manager: FeedManager) -> int | None:
    """Stop *manager*, delivering what is queued, on a helper thread: a Ctrl-C or SIGTERM
    (Ctrl-Break on Windows) meanwhile, raised here on the main thread, abandons that and
    returns at once.

    :returns: None once stopped, or the exit code after an abandoned stop: 128 plus
        the signal's number (130 for SIGINT, 143 for SIGTERM, 149 for SIGBREAK).
    """

    def stopped(timeout: float) -> bool:
        stopper.join(timeout)
        return not stopper.is_alive()

    def stop() -> None:
        manager.stop(STOP_TIMEOUT)
        with contextlib.suppress(TradefeedError):  # a feed's error is reported by the caller
            manager.join(STOP_TIMEOUT)  # a stop made by a callback leaves the dispatcher to finish

    stopper = threading.Thread(target=stop, name="tradefeed-cli-stop", daemon=True)
    stopper.start()
    try:
        stopper.join(SLOW_STOP)
        if stopper.is_alive():
            if _json_logs():
                log.warning("stopping: delivering what is queued (Ctrl-C again to abandon it)")
            else:
                sys.stderr.write("tradefeed: stopping: delivering what is queued (Ctrl-C again to abandon it)\n")
                sys.stderr.flush()
            _console.wait_until(stopped)
    except _Interrupted as again:
        log.warning("%s: abandoning what is still queued", signal.Signals(again.signum).name)
        with contextlib.suppress(_Interrupted):  # yet another one: do not wait at all
            manager.stop(ABANDON_WAIT, drain=False)  # drops the queue; a stuck sink is left behind
        return 128 + again.signum
    return None


def _print_status(
    line: _console.StatusLine, manager: FeedManager, counts: dict[str, int], seen: dict[str, int], lag_ms: dict[str, int]
) -> None:
    parts = ["%s %d/s lag %d ms" % (v, counts[v] - seen.get(v, 0), lag_ms.get(v, 0)) for v in sorted(counts)]
    reconnects = sum(s.reconnects for s in manager.stats().values())
    line.show(" | ".join(parts + ["reconnects %d" % reconnects]))


# -- commands ----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    config = _record_cli.apply_shard(config_module.load(args.config), args)
    _apply_log_level(args, config)
    if not config.feeds:  # load() refuses a file without feeds: only --shard leaves none
        log.warning("shard %d/%d has no feeds (the config has fewer feeds than shards); nothing to run", *args.shard)
        return EXIT_OK
    config = dataclasses.replace(config, metrics=_metrics_settings(args, config))
    # the command line has no GUI loop to pump: callbacks always get a dispatcher thread
    manager = config.create_manager(sinks=not (args.output or args.format), dispatch="thread")
    with _writers(args, config.outputs, out) as writers:
        return _stream(manager, writers, args)


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    try:
        config = config_module.load(args.config)
    except ConfigError as err:
        out.write("%s\n" % err)
        return EXIT_USAGE
    names = ", ".join("%s (%s)" % (name, feed.venue) for name, feed in zip(_feed_names(config), config.feeds))
    out.write("%s: ok, %d feed(s): %s\n" % (args.config, len(config.feeds), names))
    return EXIT_OK


def _feed_names(config: config_module.Config) -> list[str]:
    """The names the feeds will have: their own, else ``<venue>-<n>`` as ``add_feed``
    numbers them."""
    names: list[str] = []
    counters: dict[str, int] = {}
    for feed in config.feeds:
        name = feed.name
        while name is None or name in names:
            counters[feed.venue] = counters.get(feed.venue, 0) + 1
            name = "%s-%d" % (feed.venue, counters[feed.venue])
        names.append(name)
    return names


def cmd_venues(args: argparse.Namespace, out: TextIO) -> int:
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        out.write("%s  (default %s%s)\n" % (name, cls.default_url, ", bearer token" if cls.needs_token else ""))
        signature = inspect.signature(cls.__init__)
        for param in cls.params:
            default = signature.parameters[param].default
            shown = "required" if default is inspect.Parameter.empty else "default %r" % (default,)
            shown = cls.param_notes.get(param, shown)
            runtime = "  (subscribe/unsubscribe at run time)" if param == cls.subscription_param else ""
            out.write("    %-18s %s%s\n" % (param, shown, runtime))
        needed = "required" if cls.requires_credentials({}) else "required for private streams (public ones need none)"
        for param in cls.auth_params:
            shown = "default %s" % cls.default_auth_url if param == "auth_url" else needed
            out.write("    %-18s %s\n" % (param, cls.param_notes.get(param, shown)))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.config:
        config = config_module.load(args.config, environ=_Placeholders())  # the simulator supplies credentials
        venues = sorted({f.venue for f in config.feeds})
    else:
        config = None
        venues = sorted(REGISTRY) if args.venue == "all" else [args.venue]
    _apply_log_level(args, config)
    metrics = _metrics_settings(args, config)
    with _sim_cli.simulator(seed=args.seed, rate=args.rate, venues=venues, history=8) as sim:
        if config is None:
            manager = FeedManager()
            for venue in venues:
                manager.add_feed(venue, **sim.feed_params(venue))
                if venue == "synthetix" and _can_sign():  # the subaccount's own fills too
                    manager.add_feed(venue, name="synthetix-user", **sim.feed_params(venue, stream="user"))
            if metrics is not None:
                manager.serve_metrics(**metrics)
        else:
            manager = dataclasses.replace(_against(config, sim), metrics=metrics).create_manager(dispatch="thread")
        with _writers(args, config.outputs if config else (), out) as writers:
            return _stream(manager, writers, args)


class _Placeholders(dict):  # type: ignore[type-arg]
    """Every ``${VAR}`` resolves: a demo needs no real secrets."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        if key.upper().endswith("PRIVATE_KEY"):
            return "0x" + "11" * 32  # key-shaped, so the file checks; the simulator's replaces it
        return "from-the-simulator"


def _can_sign() -> bool:
    """Is eth-account installed (the ``sim`` and ``synthetix`` extras bring it)?"""
    if _sim_cli.can_sign():
        return True
    log.info("eth-account is not installed: the demo leaves out the Synthetix user feed (%s)", EXTRA)
    return False


def _against(config: config_module.Config, sim: Any) -> config_module.Config:
    """The config with every feed pointed at the simulator (URL and credentials)."""
    feeds = []
    for feed in config.feeds:
        local = sim.feed_params(feed.venue, stream=feed.params.get("stream", "public"))
        credentials = {k: local[k] for k in ("auth_url", "api_key", "api_secret", "private_key", "subaccount_id") if k in local}
        feeds.append(dataclasses.replace(feed, url=local["url"], params={**feed.params, **credentials}))
    return dataclasses.replace(config, feeds=tuple(feeds))


def cmd_sim(args: argparse.Namespace, out: TextIO) -> int:
    if args.replay:
        return _record_cli.cmd_sim_replay(args, out)
    return _sim_cli.cmd_sim(args, out)


def _apply_log_level(args: argparse.Namespace, config: config_module.Config | None) -> None:
    if getattr(args, "log_format", None) is None and config is not None and config.log_format:
        _set_log_format(config.log_format)  # --log-format, applied in main(), wins
    if args.debug or args.verbose:
        return  # the command line wins
    if getattr(args, "quiet", False):
        logging.getLogger().setLevel(logging.WARNING)
    elif config is not None and config.log_level:
        logging.getLogger().setLevel(config.log_level)


def cmd_query(args: argparse.Namespace, out: TextIO) -> int:
    from .sinks.sqlite import cmd_query as query, last_trades

    code = query(args, out)
    if code == EXIT_OK and (args.venue or args.symbol) and not last_trades(
        args.db, 1, table=args.table, venue=args.venue, symbol=args.symbol
    ):
        held = sorted(last_trades(args.db, 1, table=args.table))
        log.warning(
            "no trades of %s in %s; it holds %s",
            " and ".join("%s %r" % kv for kv in (("venue", args.venue), ("symbol", args.symbol)) if kv[1]),
            args.db,
            ", ".join("%s %s" % pair for pair in held) or "no trades at all",
        )
    return code


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "run": cmd_run,
    "query": cmd_query,
    "check": cmd_check,
    "venues": cmd_venues,
    "demo": cmd_demo,
    "sim": cmd_sim,
    **_record_cli.COMMANDS,
}


def main(argv: list[str] | None = None) -> int:
    """Run the ``tradefeed`` command; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _configure_logging(logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING, args.debug)
    if getattr(args, "log_format", None):
        _set_log_format(args.log_format)
    _console.tolerant_encoding(sys.stdout)  # a cp1252 console or pipe: escape, never fail
    try:
        code = COMMANDS[args.command](args, sys.stdout)
        sys.stdout.flush()  # here, where a closed pipe can still be told from a failure
        return code
    except BrokenPipeError:  # `tradefeed ... | head`: the reader has what it wanted
        _console.silence(sys.stdout)
        return EXIT_OK
    except ConfigError as err:
        _report(err, args.debug)
        return EXIT_USAGE
    except _Interrupted as err:  # a second signal before a stop could wait for it
        return 128 + err.signum
    except KeyboardInterrupt:  # Ctrl-C outside a stream's own handling (which exits 0)
        return 128 + signal.SIGINT
    except (TradefeedError, OSError) as err:
        _report(err, args.debug)
        return EXIT_FAILURE


def _report(err: BaseException, debug: bool) -> None:
    if debug:
        log.exception("tradefeed: %s", err)
    _say_error(str(err))
