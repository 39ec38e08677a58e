"""Command-line glue for ``record``, ``replay``, ``sim --replay`` and ``run --shard``.

Kept out of ``cli.py`` (which registers these) so that file keeps one owner.  The
functions follow its conventions: ``cmd_*(args, out) -> int`` with ``out`` the stdout
stream, :class:`ConfigError` for usage and input problems (exit 2),
:class:`TradefeedError` or :class:`OSError` for runtime failures (exit 1), logging
only through ``logging``.  Registering them in ``cli.py``::

    from . import _record_cli

    _record_cli.add_record_commands(sub)            # record CONFIG --out FILE, replay FILE
    _record_cli.add_sim_replay_arguments(sim)       # sim --replay FILE [--speed X | --max]
    _record_cli.add_shard_arguments(run)            # run CONFIG --shard I/N [--split N]
    COMMANDS.update(_record_cli.COMMANDS)           # "record", "replay"

    # in cmd_sim, first:  if args.replay: return _record_cli.cmd_sim_replay(args, out)
    # in cmd_run, after load():  config = _record_cli.apply_shard(config, args)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Iterator, TextIO

from . import config as config_module
from ._console import stop_signals, wait_until
from .exceptions import ConfigError, TradefeedError
from .manager import FeedManager
from .models import Status, StatusEvent, Trade
from .output import FORMATS, TradeWriter
from .recording import Recorder, replay

__all__ = [
    "COMMANDS",
    "add_record_commands",
    "add_shard_arguments",
    "add_sim_replay_arguments",
    "apply_shard",
    "cmd_record",
    "cmd_replay",
    "cmd_sim_replay",
]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE = 0, 1


# -- arguments ---------------------------------------------------------------------------


def _shard_arg(text: str) -> tuple[int, int]:
    try:
        return config_module.parse_shard(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (shared with cli.py)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (shared with cli.py)."""
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a number > 0")
    return value


def _pace_arguments(parser: argparse.ArgumentParser) -> None:
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=positive_float, default=1.0, help="pace: 1 = as recorded (default), 2 = twice as fast")
    pace.add_argument("--max", action="store_true", help="as fast as possible")


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    """``--shard I/N`` (1-based) and ``--split N``, for ``run`` and ``record``."""
    parser.add_argument(
        "--shard",
        type=_shard_arg,
        metavar="I/N",
        help="run only shard I of N (1-based: 1/3 2/3 3/3); every process needs the same config",
    )
    parser.add_argument(
        "--split",
        type=positive_int,
        metavar="N",
        help="split subscription lists longer than N items into several feeds (before sharding)",
    )


def apply_shard(config: config_module.Config, args: argparse.Namespace) -> config_module.Config:
    """*config* split by the venues' documented limits (or ``--split``) and cut to
    ``--shard``, when ``--shard`` or ``--split`` was given; else unchanged."""
    shard = getattr(args, "shard", None)
    split = getattr(args, "split", None)
    if shard is None and split is None:
        return config
    config = config_module.split_feeds(config, split)
    if shard is not None:
        config = config_module.shard(config, *shard)
        log.info("shard %d/%d: %d feed(s): %s", shard[0], shard[1], len(config.feeds), _names(config))
    return config


def add_record_commands(subparsers: Any) -> None:
    """Add ``record`` and ``replay`` to the ``add_subparsers()`` object of ``tradefeed``."""
    record = subparsers.add_parser("record", help="record every raw frame of a YAML config's feeds to a file")
    record.add_argument("config", help="the YAML configuration file")
    record.add_argument("--out", required=True, metavar="FILE", help="the recording to write (replaced if it exists)")
    record.add_argument("--duration", type=positive_float, help="stop after S seconds")
    record.add_argument("--limit", type=positive_int, help="stop after N frames")
    add_shard_arguments(record)

    play = subparsers.add_parser("replay", help="push a recording through the adapters and print its trades")
    play.add_argument("file", help="a recording made by 'tradefeed record'")
    _pace_arguments(play)
    play.add_argument("--feed", action="append", metavar="NAME", help="replay only this feed (repeatable)")
    play.add_argument("--format", choices=FORMATS, help="output format (default table; jsonl with --output)")
    play.add_argument("--output", metavar="FILE", help="append trades to FILE instead of stdout")
    play.add_argument("--config", help="also write to this YAML config's sinks (file, sqlite, redis outputs)")


def add_sim_replay_arguments(sim_parser: argparse.ArgumentParser) -> None:
    """Add ``--replay FILE`` and its pace to the ``sim`` command's parser."""
    sim_parser.add_argument("--replay", metavar="FILE", help="serve each feed of a recording as a venue of its own")
    _pace_arguments(sim_parser)


# -- running ---------------------------------------------------------------------------


class _Interrupted(Exception):
    pass


def _on_stop_signal(signum: int, frame: Any) -> None:
    raise _Interrupted()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (Ctrl-Break on Windows) raises :class:`_Interrupted` on the main thread,
    like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _on_stop_signal) for signum in stop_signals()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _names(config: config_module.Config) -> str:
    return ", ".join(f.name or f.venue for f in config.feeds) or "none"


def cmd_record(args: argparse.Namespace, out: TextIO) -> int:
    """``tradefeed record CONFIG --out FILE [--duration S] [--limit N] [--shard I/N]``:
    run the config's feeds (not its outputs) and write every raw frame to FILE, until
    the duration or frame limit, Ctrl-C/SIGTERM, or every feed has ended."""
    config = apply_shard(config_module.load(args.config), args)
    done = threading.Event()
    with Recorder(args.out, limit=args.limit, full=done) as recorder:
        # no metrics endpoint: a recording often runs beside `tradefeed run` of the same
        # file, whose settings.metrics port it would otherwise compete for
        manager = config.create_manager(sinks=False, serve_metrics=False, recorder=recorder)
        feeds = len(manager.feeds)
        ended: set[str] = set()

        @manager.on_status
        def status(event: StatusEvent) -> None:
            log.info("%s %s %s", event.feed, event.status.value, dict(event.detail) or "")
            if event.status is Status.STOPPED:
                ended.add(event.feed)
                if len(ended) == feeds:
                    done.set()

        manager.on_error(lambda err: log.warning("%s", err))
        if feeds:
            _run(manager, done, args.duration, recorder.flush)
        else:
            log.warning("no feeds to record (an empty shard)")
    out.write("recorded %d frames of %d feed(s) to %s\n" % (recorder.frames, feeds, args.out))
    if recorder.error is not None:
        raise TradefeedError("recording to %s failed: %s" % (args.out, recorder.error))
    failed = [f for f in manager.feeds if f.error is not None]
    for feed in failed:
        log.error("feed %s ended: %s", feed.name, feed.error)
    return EXIT_FAILURE if failed else EXIT_OK


def _run(manager: FeedManager, done: threading.Event, duration: float | None, every_second: Callable[[], None]) -> None:
    """Run *manager* until *done*, *duration* seconds or Ctrl-C/SIGTERM; then stop it."""
    deadline = None if duration is None else time.monotonic() + duration
    with _sigterm_interrupts():
        try:
            manager.start()
            while True:
                wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if wait <= 0 or done.wait(wait):
                    break
                every_second()
        except (KeyboardInterrupt, _Interrupted):
            log.info("interrupted; stopping")
        finally:
            manager.stop()


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    """``tradefeed replay FILE [--speed X | --max] [--feed NAME] [--format F] [--output
    FILE] [--config CONFIG]``: the recording's trades through the adapters, to stdout
    (or ``--output``) and to the sinks of ``--config``."""
    manager = FeedManager()
    if args.config:
        config = config_module.load(args.config)
        for output in config.outputs:
            if output.type != "stdout":
                manager.add_sink(output.create_sink())
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        if args.output:
            fresh = not os.path.exists(args.output) or os.path.getsize(args.output) == 0
            stream: TextIO = stack.enter_context(open(args.output, "a", encoding="utf-8", newline=""))
            writer = TradeWriter(stream, args.format or "jsonl", header=fresh)
        else:
            writer = TradeWriter(out, args.format or "table")

        @manager.on_trade
        def write(trade: Trade) -> None:
            if stop.is_set():
                return
            try:
                writer.write(trade)
            except BrokenPipeError:  # `tradefeed replay ... | head`
                stop.set()

        manager.on_error(lambda err: log.warning("%s", err))
        with _sigterm_interrupts():
            try:
                with manager:
                    stats = replay(args.file, manager, speed=None if args.max else args.speed, feeds=args.feed, stop=stop)
                log.info(
                    "replayed %d frames of %s: %d trades, %d duplicates dropped, %d errors",
                    stats.frames, ", ".join(stats.feeds) or "no feed", stats.trades, stats.duplicates, stats.errors,
                )  # fmt: skip
            except (KeyboardInterrupt, _Interrupted):
                log.info("interrupted")
    return EXIT_OK


def cmd_sim_replay(args: argparse.Namespace, out: TextIO) -> int:
    """``tradefeed sim --replay FILE [--speed X | --max] [--port P] [--venue V]``:
    serve each feed of the recording on a port of its own (any path), plus any
    ``--venue`` given, until Ctrl-C/SIGTERM.  Prints ``feed venue url params`` lines."""
    try:
        from .simulator import Simulator
        from .simulator.replay import replay_venues
    except ImportError as err:
        raise ConfigError("the simulator needs the 'sim' extra: pip install 'tradefeed[sim]' (%s)" % err) from err
    try:
        venues = replay_venues(args.replay, speed=None if args.max else args.speed)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    served = list(getattr(args, "venue", None) or [])
    port = getattr(args, "port", 0)
    ports = {next(iter(venues)): port} if port else None
    sim = Simulator(
        seed=getattr(args, "seed", 1),
        rate=getattr(args, "rate", 200.0),
        venues=served,
        ports=ports,
        custom_venues=venues,
    )
    with sim, _sigterm_interrupts():
        for name, venue in venues.items():
            out.write("%-14s %-10s %s  %s\n" % (name, venue.recorded_venue, sim.url(name), json.dumps(venue.demo_params())))
        for name in served:
            out.write("%-14s %-10s %s\n" % (name, name, sim.url(name)))
        out.write("simulator replaying %s; Ctrl-C to stop\n" % args.replay)
        out.flush()
        try:
            wait_until(threading.Event().wait)  # until Ctrl-C or a stop signal
        except (KeyboardInterrupt, _Interrupted):
            log.info("interrupted")
    return EXIT_OK


#: command name -> function, for ``cli.COMMANDS``
COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "record": cmd_record,
    "replay": cmd_replay,
}
