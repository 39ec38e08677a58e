"""The ``sim`` command, and starting the simulator for ``sim``, ``sim --replay`` and
``demo``.

``tradefeed sim`` serves every venue and prints all a configuration needs to stream
them (each URL, the Rails token endpoint, and the simulator's own public test
credentials: a Rails key pair, the Synthetix user feed's wallet key and subaccount),
as a ready-to-run YAML document; ``--write-config FILE`` writes that document to FILE
instead, so ``tradefeed check``/``run``/``record`` work from the shell alone.

Follows ``cli.py``'s conventions (``cmd_*(args, out) -> int``; :class:`ConfigError`
for a usage problem, exit 2).  The simulator package is imported lazily: without the
``sim`` extra the parser still builds, and running a simulator says which extra to
install.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TextIO

from . import _args
from ._console import stop_signals, wait_until
from .adapters import REGISTRY
from .exceptions import ConfigError

__all__ = [
    "add_sim_arguments",
    "cmd_sim",
    "simulator",
    "sim_feeds",
    "config_text",
    "check_config_target",
    "write_config",
    "can_sign",
    "serve_until_stopped",
    "MARKER",
]

log = logging.getLogger(__name__)

#: the first line of every file ``--write-config`` writes: such a file may be replaced
MARKER = "# written by tradefeed sim --write-config"
#: parameters that are the simulator's own test credentials (marked as such in a config)
_CREDENTIALS = ("api_key", "api_secret", "private_key")


def add_sim_arguments(sub: Any) -> argparse.ArgumentParser:
    """Add ``sim`` to the ``add_subparsers()`` object of ``tradefeed``; returns its parser."""
    sim: argparse.ArgumentParser = sub.add_parser(
        "sim", help="run the simulator in the foreground; print its URLs and a config for it"
    )
    sim.add_argument("--venue", action="append", choices=sorted(REGISTRY), help="venue to serve (repeatable; default all)")
    sim.add_argument("--port", type=_args.port, default=0, help="port for the (first) venue; default: any free port")
    sim.add_argument("--seed", type=_args.whole_number, default=1, help="seed of the simulated tapes (default 1)")
    sim.add_argument(
        "--rate", type=_args.rate, default=200.0, help="trades per second per venue (default 200; 0: only the initial history)"
    )
    sim.add_argument(
        "--write-config",
        metavar="FILE",
        help="write a ready-to-run YAML config for the served venues to FILE (replaces a file it wrote before)",
    )
    return sim


class _Stop(Exception):
    """SIGTERM (Ctrl-Break on Windows), raised on the main thread."""


def _on_stop_signal(signum: int, frame: Any) -> None:
    raise _Stop()


def serve_until_stopped() -> None:
    """Block the main thread until Ctrl-C, SIGTERM or Ctrl-Break."""
    main = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, _on_stop_signal) for signum in stop_signals()} if main else {}
    try:
        wait_until(threading.Event().wait)
    except (KeyboardInterrupt, _Stop):
        log.info("interrupted")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def simulator(**kwargs: Any) -> Iterator[Any]:
    """A started :class:`~tradefeed.simulator.Simulator`, stopped on exit.

    :raises ConfigError: the ``sim`` extra is missing, or a port cannot be bound (in
        use, or not allowed): one line naming the port and the fix.
    """
    try:
        from .simulator import Simulator, SimulatorError
    except ImportError as err:
        raise ConfigError("the simulator needs the 'sim' extra: pip install 'tradefeed[sim]' (%s)" % err) from err
    try:
        sim = Simulator(**kwargs)
    except ValueError as err:
        raise ConfigError("simulator: %s" % err) from err
    try:
        sim.start()
    except SimulatorError as err:
        raise ConfigError("%s; choose another port (0 or none: any free port)" % err) from err
    try:
        yield sim
    finally:
        sim.stop()


def can_sign() -> bool:
    """Is eth-account installed (the ``sim`` and ``synthetix`` extras bring it), so that
    a Synthetix user feed can sign?"""
    try:
        import eth_account  # noqa: F401
    except ImportError:
        return False
    return True


def sim_feeds(sim: Any, venues: Sequence[str]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """``(venue, name, add_feed parameters with url)`` of a feed for every served venue:
    Rails with its public tape and the account's fills, and with eth-account installed
    the Synthetix user feed too."""
    feeds: list[tuple[str, str | None, dict[str, Any]]] = []
    for venue in venues:
        params = sim.feed_params(venue)
        if venue == "rails":
            params["subscriptions"] = ["publicTrades", "trades"]  # the simulated account trades too
        feeds.append((venue, None, params))
        if venue == "synthetix" and can_sign():
            feeds.append((venue, "synthetix-user", sim.feed_params(venue, stream="user")))
    return feeds


def _yaml(value: Any) -> str:
    """A YAML flow value: JSON is YAML, and quotes every string (an id stays a string)."""
    return json.dumps(value)


def config_text(feeds: Sequence[tuple[str, str | None, Mapping[str, Any]]], source: str) -> str:
    """A YAML configuration streaming *feeds* (``(venue, name, params)``, the params
    with ``url``), the simulator's credentials marked as such.

    :param source: what the file is for, said in its header comment.
    """
    lines = [
        "# for %s; valid while it runs on these ports." % source,
        "# Run it: tradefeed check FILE && tradefeed run FILE (or tradefeed record FILE --out rec.jsonl).",
    ]
    if any(key in params for _, _, params in feeds for key in _CREDENTIALS):
        lines += [
            "# api_key, api_secret and private_key below are the simulator's own public test credentials:",
            "# they work only against it.  For a real venue drop the url lines and take credentials from",
            "# the environment (api_key: ${RAILS_API_KEY}).",
        ]
    lines.append("feeds:")
    for venue, name, params in feeds:
        lines.append("  - venue: %s" % venue)
        if name is not None:
            lines.append("    name: %s" % _yaml(name))
        for key in sorted(params, key=lambda k: (k != "url", k in _CREDENTIALS, k)):
            comment = "  # the simulator's test credential" if key in _CREDENTIALS else ""
            lines.append("    %s: %s%s" % (key, _yaml(params[key]), comment))
    return "\n".join(lines) + "\n"


def check_config_target(path: str) -> None:
    """Say before the simulator starts whether ``--write-config`` may write *path*: its
    directory is created; a file there may be replaced only if ``--write-config`` wrote
    it (its first line is :data:`MARKER`).

    :raises ConfigError: another file is in the way, or the path cannot be written.
    """
    target = Path(path)
    _args.prepare_output(target)
    if target.exists():
        try:
            with open(target, encoding="utf-8", errors="replace") as existing:
                first = existing.readline().rstrip("\r\n")
        except OSError as err:
            raise ConfigError("cannot write %s: %s" % (path, err.strerror or err)) from err
        if first != MARKER:
            raise ConfigError("%s exists and was not written by tradefeed sim; give another FILE, or remove it first" % path)


def write_config(path: str, text: str) -> None:
    """Write :data:`MARKER` and *text* to *path* (checked by :func:`check_config_target`).

    :raises ConfigError: the file cannot be written.
    """
    check_config_target(path)
    target = Path(path)
    try:
        with open(target, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(MARKER + "\n" + text)
    except OSError as err:
        raise ConfigError("cannot write %s: %s" % (path, err.strerror or err)) from err


def cmd_sim(args: argparse.Namespace, out: TextIO) -> int:
    """``tradefeed sim [--venue V ...] [--port P] [--seed N] [--rate R] [--write-config
    FILE] [--admin-port P]``: serve until Ctrl-C/SIGTERM."""
    venues = args.venue or sorted(REGISTRY)
    ports = {venues[0]: args.port} if args.port else None
    if args.write_config:
        check_config_target(args.write_config)  # a bad path is said before anything starts
    with simulator(seed=args.seed, rate=args.rate, venues=venues, ports=ports, admin_port=args.admin_port) as sim:
        for venue in venues:
            out.write("%-10s %s\n" % (venue, sim.url(venue)))
        if args.admin_port is not None:
            out.write("%-10s %s\n" % ("admin", sim.admin_url()))
        text = config_text(sim_feeds(sim, venues), "the simulator started by `tradefeed sim` (seed %d)" % args.seed)
        if args.write_config:
            write_config(args.write_config, text)
            out.write("wrote %s (with the simulator's own test credentials): tradefeed run %s\n" % (args.write_config, _quote(args.write_config)))
        else:
            out.write("\n# A config for every venue above (tradefeed sim --write-config FILE writes it to FILE):\n")
            out.write(text + "\n")
        out.write("simulator running; Ctrl-C to stop\n")
        out.flush()
        serve_until_stopped()
    return 0


def _quote(path: str) -> str:
    """*path* as one shell word, for the hint lines (double quotes on Windows' shells)."""
    if all(c.isalnum() or c in "._-/\\:" for c in path):
        return path
    if os.name == "nt":
        return '"%s"' % path
    return "'%s'" % path.replace("'", "'\\''")
