"""What every ``tradefeed`` command shares about its options: the parser class, the
argparse types, and how an output file is opened.

One rule for the whole command line: a mistake in an option is one line on stderr
naming the option, what is wrong and where to look (``--help``), exit 2.  So every
command checks a number, a port or a rate with the same type from here (``demo
--rate`` and ``sim --rate`` cannot disagree), and every output file is opened the same
way (missing directories are created, as the file and SQLite sinks do; a path that
still cannot be written is a :class:`ConfigError` naming it).

Nothing here runs a command or imports the rest of the command line.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import NoReturn, TextIO

from .exceptions import ConfigError

__all__ = [
    "Parser",
    "positive_int",
    "positive_float",
    "rate",
    "port",
    "whole_number",
    "prepare_output",
    "open_output",
    "output_format",
]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line:
    ``tradefeed demo: error: argument --limit: must be a whole number >= 1, not '0'
    (see tradefeed demo --help)``, exit 2; the full usage is in ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, "%s: error: %s (see %s --help)\n" % (self.prog, message, self.prog))


def whole_number(text: str) -> int:
    """argparse type: any whole number (a seed)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number, not %r" % text) from None


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("must be a whole number >= 1, not %r" % text)
    return value


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (seconds, a speed)."""
    value = _finite(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError("must be a number > 0, not %r" % text)
    return value


def rate(text: str) -> float:
    """argparse type: simulated trades per second per venue, a finite number >= 0 (0:
    none after the initial history; the admin endpoint can still inject frames)."""
    value = _finite(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError("must be a number of trades per second >= 0, not %r" % text)
    return value


def port(text: str) -> int:
    """argparse type: a TCP port, 0..65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number within 0..65535 (0: any free port), not %r" % text)
    return value


def output_format(path: str, given: str | None, default: str = "jsonl") -> str:
    """The format of an ``--output FILE``: *given* (``--format``) if any, else ``csv``
    for a name ending in ``.csv``, else *default* (``jsonl``)."""
    if given:
        return given
    return "csv" if path.lower().endswith(".csv") else default


def prepare_output(path: str | os.PathLike[str]) -> None:
    """Create the directories an output file needs (as the file and SQLite sinks do).

    :raises ConfigError: a directory cannot be created, or *path* is a directory.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigError("cannot write %s: it is a directory; give a file name" % target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError("cannot write %s: cannot create its directory: %s" % (target, err.strerror or err)) from err


def open_output(path: str | os.PathLike[str]) -> tuple[TextIO, bool]:
    """Open an output file for appending text (UTF-8, ``newline=""`` for CSV),
    creating its directory.

    :returns: the stream, and whether the file was empty (a CSV file then gets a header).
    :raises ConfigError: the file cannot be opened, naming it and the reason.
    """
    prepare_output(path)
    try:
        stream = open(path, "a", encoding="utf-8", newline="")
    except OSError as err:
        raise ConfigError("cannot write %s: %s" % (path, err.strerror or err)) from err
    return stream, stream.tell() == 0
