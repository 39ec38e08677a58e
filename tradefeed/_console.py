"""What the command line needs of the platform: its stop signals, its console.

POSIX and Windows differ in three places that a command meets:

- **Signals.** A service manager or ``kill`` stops a POSIX process with SIGTERM.  Windows
  cannot send SIGTERM to a console process (``os.kill`` there terminates it outright);
  what a console delivers besides Ctrl-C (SIGINT) is Ctrl-Break, SIGBREAK.
- **Waiting.** Before Python 3.14, Ctrl-C does not interrupt a lock or an event wait
  without a timeout on Windows: the main thread waits in short slices instead
  (:func:`wait_until`).
- **The console.** The status line redraws itself with ANSI escapes (``ESC [ K``), which a
  Windows console prints literally unless virtual-terminal processing is on; and a
  console or pipe in a legacy code page (cp1252, cp437) cannot encode every symbol.

Each Windows branch is taken on ``sys.platform == "win32"`` and tested on Linux with
``sys.platform`` and the Windows modules it uses patched.
"""

from __future__ import annotations

import codecs
import io
import os
import signal
import sys
from typing import Callable, TextIO

__all__ = ["stop_signals", "wait_until", "ansi_escapes", "StatusLine", "tolerant_encoding", "silence"]

#: the console mode flag that makes a Windows console interpret ANSI escapes
ENABLE_VIRTUAL_TERMINAL_PROCESSING = 0x0004
#: seconds the main thread waits at a time where it must stay interruptible
WAIT_SLICE = 0.25


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals, besides Ctrl-C (SIGINT), that ask a command to stop cleanly:
    SIGTERM on POSIX; Ctrl-Break (SIGBREAK) on Windows."""
    if sys.platform == "win32":
        return (signal.SIGBREAK,)
    return (signal.SIGTERM,)


def wait_until(done: Callable[[float], bool]) -> None:
    """Call ``done(timeout)`` (an ``Event.wait`` or a ``Thread.join`` that says whether it
    is over) in slices of :data:`WAIT_SLICE` until it returns True, so that a signal
    handler (Ctrl-C) runs on the main thread within a slice on every platform."""
    while not done(WAIT_SLICE):
        pass


def ansi_escapes(stream: TextIO) -> bool:
    """Does the terminal behind *stream* interpret ANSI escapes?  On Windows this turns
    virtual-terminal processing on for its console (Windows 10 and later) and says
    False where that fails (a legacy console, or no console at all)."""
    if sys.platform != "win32":
        return True
    import ctypes
    import msvcrt

    try:
        handle = msvcrt.get_osfhandle(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    kernel32 = ctypes.windll.kernel32
    mode = ctypes.c_ulong()
    if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
        return False
    if mode.value & ENABLE_VIRTUAL_TERMINAL_PROCESSING:
        return True
    return bool(kernel32.SetConsoleMode(handle, mode.value | ENABLE_VIRTUAL_TERMINAL_PROCESSING))


class StatusLine:
    """One line of a terminal, redrawn in place: with ``ESC [ K`` (erase to the end of
    the line) where the terminal takes ANSI escapes, else by padding with spaces over
    what the previous text left."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.ansi = ansi_escapes(stream)
        self._width = 0

    def show(self, text: str) -> None:
        if self.ansi:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        self.stream.flush()

    def end(self) -> None:
        """Leave the line as it is and move below it."""
        self.stream.write("\n")
        self.stream.flush()


def tolerant_encoding(stream: TextIO) -> None:
    """Let *stream* write any text: where its encoding cannot encode all of Unicode (a
    console or pipe in cp1252 or cp437, a C locale), a character it lacks is written as a
    backslash escape (``\\u2192``) instead of failing the write, and the command with it."""
    encoding = getattr(stream, "encoding", None)
    if not encoding or not isinstance(stream, io.TextIOWrapper):
        return
    if codecs.lookup(encoding).name in ("utf-8", "utf-16", "utf-32", "utf-8-sig"):
        return
    stream.reconfigure(errors="backslashreplace")


def silence(stream: TextIO) -> None:
    """Point *stream*'s file descriptor at the null device, so that what is still
    buffered for a reader that has gone (``| head``) is dropped at exit instead of
    ending in a "BrokenPipeError ignored" message.  Works the same on Windows."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)
