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
import signal
import threading
import time
from typing import Any, Callable, Iterator, TextIO

from . import config as config_module
from ._args import open_output, output_format, positive_float, positive_int, prepare_output
from ._console import stop_signals, wait_until
from .exceptions import ConfigError, TradefeedError
from .manager import FeedManager
from .models import Trade
from .output import FORMATS, TradeWriter
from ._watch import FeedWatch, say_error
from .recording import Recorder, read, replay

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
    play.add_argument(
        "--format", choices=FORMATS, help="output format (default table; with --output: csv for a .csv FILE, else jsonl)"
    )
    play.add_argument("--output", metavar="FILE", help="append trades to FILE (created with its directory) instead of stdout")
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
    prepare_output(args.out)
    done = threading.Event()
    with Recorder(args.out, limit=args.limit, full=done) as recorder:
        # no metrics endpoint: a recording often runs beside `tradefeed run` of the same
        # file, whose settings.metrics port it would otherwise compete for
        manager = config.create_manager(sinks=False, serve_metrics=False, recorder=recorder)
        feeds = len(manager.feeds)
        watch = FeedWatch(manager, say_error, all_ended=done)
        interrupted = False
        if feeds:
            interrupted = _run(manager, done, args.duration, recorder.flush)
        else:
            log.warning("no feeds to record (an empty shard)")
    out.write("recorded %d frames of %d feed(s) to %s\n" % (recorder.frames, feeds, args.out))
    if recorder.error is not None:
        raise TradefeedError("recording to %s failed: %s" % (args.out, recorder.error))
    return watch.exit_code(ran=bool(feeds) and not interrupted)


def _run(manager: FeedManager, done: threading.Event, duration: float | None, every_second: Callable[[], None]) -> bool:
    """Run *manager* until *done*, *duration* seconds or Ctrl-C/SIGTERM; then stop it.

    :returns: whether Ctrl-C or SIGTERM ended it.
    """
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
            return True
        finally:
            manager.stop()
    return False


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    """``tradefeed replay FILE [--speed X | --max] [--feed NAME] [--format F] [--output
    FILE] [--config CONFIG]``: the recording's trades through the adapters, to stdout
    (or ``--output``) and to the sinks of ``--config``."""
    _check_recording(args.file, args.feed)
    manager = FeedManager()
    if args.config:
        config = config_module.load(args.config)
        for output in config.outputs:
            if output.type != "stdout":
                manager.add_sink(output.create_sink())
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        if args.output:
            stream, fresh = open_output(args.output)
            stack.enter_context(stream)
            writer = TradeWriter(stream, output_format(args.output, args.format), header=fresh, defer_header=True)
        else:
            writer = TradeWriter(out, args.format or "table", defer_header=True)

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


def _check_recording(path: str, feeds: list[str] | None) -> None:
    """Say at once when the recording cannot be read, or holds no feed named in *feeds*
    (``--feed``): then it names the feeds it holds.

    :raises ConfigError: as one line.
    """
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise ConfigError("cannot read %s: %s" % (path, err.strerror or err)) from err
    if not feeds:
        return
    held: list[str] = []
    for entry in read(path):
        if entry.kind == "feed" and entry.feed not in held:
            held.append(entry.feed)
    missing = [name for name in feeds if name not in held]
    if missing:
        raise ConfigError(
            "%s holds no feed named %s; it holds %s" % (path, ", ".join(map(repr, missing)), ", ".join(held) or "no feed")
        )


def cmd_sim_replay(args: argparse.Namespace, out: TextIO) -> int:
    """``tradefeed sim --replay FILE [--speed X | --max] [--port P] [--venue V]
    [--write-config FILE]``: serve each feed of the recording on a port of its own (any
    path), plus any ``--venue`` given, until Ctrl-C/SIGTERM.  Prints ``feed venue url
    params`` lines.  A feed whose client needs credentials (a Rails recording of the
    account's ``trades``) is not served: replay has no token endpoint to give it one."""
    from . import _sim_cli
    from .adapters import REGISTRY

    try:
        from .simulator.replay import load
    except ImportError as err:
        raise ConfigError("the simulator needs the 'sim' extra: pip install 'tradefeed[sim]' (%s)" % err) from err
    _check_recording(args.replay, None)
    try:
        recorded = load(args.replay)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    unservable = {
        name: feed.venue
        for name, feed in recorded.items()
        if feed.venue in REGISTRY and _needs_credentials(REGISTRY[feed.venue], feed.params)
    }
    servable = [name for name in recorded if name not in unservable]
    served = list(getattr(args, "venue", None) or [])
    if not servable and not served:
        raise ConfigError(
            "%s: nothing to serve: %s need(s) credentials, which a replayed feed cannot check; "
            "use tradefeed replay %s instead" % (args.replay, ", ".join(unservable), args.replay)
        )
    from .simulator.replay import ReplayVenue

    speed = None if args.max else args.speed
    venues = {name: ReplayVenue(recorded[name], speed=speed) for name in servable}
    port = getattr(args, "port", 0)
    ports = {(servable or served)[0]: port} if port else None
    write = getattr(args, "write_config", None)
    if write:
        _sim_cli.check_config_target(write)
    kwargs = dict(seed=getattr(args, "seed", 1), rate=getattr(args, "rate", 200.0), venues=served, ports=ports)
    with _sim_cli.simulator(**kwargs, custom_venues=venues) as sim, _sigterm_interrupts():
        for name, venue in venues.items():
            out.write("%-14s %-10s %s  %s\n" % (name, venue.recorded_venue, sim.url(name), json.dumps(venue.demo_params())))
        for name in served:
            out.write("%-14s %-10s %s\n" % (name, name, sim.url(name)))
        for name, venue_name in unservable.items():
            log.warning(
                "%s (%s) is not served: its client needs credentials, which a replayed feed cannot check "
                "(tradefeed replay %s replays it)", name, venue_name, args.replay,
            )  # fmt: skip
        if write:
            feeds: list[tuple[str, str | None, dict[str, Any]]] = [
                (v.recorded_venue, name, {"url": sim.url(name), **v.demo_params()}) for name, v in venues.items()
            ]
            feeds += _sim_cli.sim_feeds(sim, served)
            _sim_cli.write_config(write, _sim_cli.config_text(feeds, "`tradefeed sim --replay %s`" % args.replay))
            out.write("wrote %s: tradefeed run %s\n" % (write, write))
        out.write("simulator replaying %s; Ctrl-C to stop\n" % args.replay)
        out.flush()
        try:
            wait_until(threading.Event().wait)  # until Ctrl-C or a stop signal
        except (KeyboardInterrupt, _Interrupted):
            log.info("interrupted")
    return EXIT_OK


def _needs_credentials(cls: Any, params: dict[str, Any]) -> bool:
    try:
        return bool(cls.requires_credentials(params))
    except ConfigError:
        return False


#: command name -> function, for ``cli.COMMANDS``
COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "record": cmd_record,
    "replay": cmd_replay,
}
