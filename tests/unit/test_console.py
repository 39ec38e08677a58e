"""The command line's platform branches (tradefeed._console, and the Winsock error text of
tradefeed._transport), each exercised here on Linux by patching ``sys.platform`` as the
module sees it and the Windows modules it calls (msvcrt, ctypes.windll)."""

from __future__ import annotations

import ctypes
import io
import os
import signal
import sys
import threading
import types
from decimal import Decimal

import pytest

from tradefeed import _console, _transport, cli
from tradefeed.models import Side, Trade
from tradefeed.output import TradeWriter


@pytest.fixture
def windows(monkeypatch):
    """sys.platform == "win32" as _console and _transport see it."""
    fake_sys = types.SimpleNamespace(platform="win32")
    monkeypatch.setattr(_console, "sys", fake_sys)
    monkeypatch.setattr(_transport, "sys", fake_sys)


# -- signals ------------------------------------------------------------------------


def test_stop_signals_are_sigterm_on_posix():
    assert _console.stop_signals() == (signal.SIGTERM,)


def test_stop_signals_are_ctrl_break_on_windows(windows, monkeypatch):
    """Windows cannot deliver SIGTERM to a console process: Ctrl-Break (SIGBREAK) stops."""
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)
    assert _console.stop_signals() == (21,)


@pytest.mark.timeout(60)
def test_run_stops_cleanly_on_the_windows_stop_signal(windows, monkeypatch, capsys):
    """`tradefeed demo` with the Windows signal set: its SIGBREAK handler (SIGUSR2 stands in
    for it on Linux) stops the run like Ctrl-C, exit 0, and the previous handler is back."""
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR2, raising=False)
    before = signal.getsignal(signal.SIGUSR2)
    installed = threading.Event()
    gave_up = threading.Event()

    def send_when_installed() -> None:
        for _ in range(2000):  # until the handler is in place, 20 s at most
            if signal.getsignal(signal.SIGUSR2) is cli._interrupt:
                installed.set()
                os.kill(os.getpid(), signal.SIGUSR2)
                return
            if gave_up.wait(0.01):
                return

    sender = threading.Thread(target=send_when_installed, name="test-sigbreak")
    sender.start()
    try:
        code = cli.main(["demo", "--duration", "50", "--format", "jsonl", "--rate", "100"])
    finally:
        gave_up.set()
        sender.join(10)
    assert installed.is_set(), "the run never installed a SIGBREAK handler"
    assert code == 0
    assert signal.getsignal(signal.SIGUSR2) is before
    assert "Traceback" not in capsys.readouterr().err


def test_wait_until_waits_in_slices_until_done():
    """Waits stay short (a Windows main thread runs signal handlers between them)."""
    timeouts = []

    def done(timeout: float) -> bool:
        timeouts.append(timeout)
        return len(timeouts) == 3

    _console.wait_until(done)
    assert timeouts == [_console.WAIT_SLICE] * 3


# -- the console --------------------------------------------------------------------


class FakeKernel32:
    """GetConsoleMode/SetConsoleMode as ctypes calls them, recording what was set."""

    def __init__(self, mode: int | None, settable: bool = True) -> None:
        self.mode, self.settable, self.set_to = mode, settable, []

    def GetConsoleMode(self, handle: int, ref: object) -> int:
        assert handle == 1234
        if self.mode is None:
            return 0  # not a console (redirected to a file or pipe)
        ref._obj.value = self.mode  # type: ignore[attr-defined]
        return 1

    def SetConsoleMode(self, handle: int, mode: int) -> int:
        self.set_to.append(mode)
        return 1 if self.settable else 0


@pytest.fixture
def console(windows, monkeypatch):
    """A fake Windows console behind fileno() 2: returns its FakeKernel32 setter."""
    monkeypatch.setitem(sys.modules, "msvcrt", types.SimpleNamespace(get_osfhandle=lambda fd: 1234))

    def install(kernel32: FakeKernel32) -> FakeKernel32:
        monkeypatch.setattr(ctypes, "windll", types.SimpleNamespace(kernel32=kernel32), raising=False)
        return kernel32

    return install


class Tty(io.StringIO):
    def fileno(self) -> int:
        return 2


def test_ansi_escapes_everywhere_but_windows():
    assert _console.ansi_escapes(io.StringIO()) is True


def test_windows_console_gets_virtual_terminal_mode(console):
    kernel32 = console(FakeKernel32(mode=0x3))
    assert _console.ansi_escapes(Tty()) is True
    assert kernel32.set_to == [0x3 | _console.ENABLE_VIRTUAL_TERMINAL_PROCESSING]


def test_windows_console_already_in_virtual_terminal_mode(console):
    kernel32 = console(FakeKernel32(mode=0x7))
    assert _console.ansi_escapes(Tty()) is True
    assert kernel32.set_to == []


def test_legacy_windows_console_gets_no_escapes(console):
    """SetConsoleMode refuses the flag (before Windows 10): plain text."""
    console(FakeKernel32(mode=0x3, settable=False))
    assert _console.ansi_escapes(Tty()) is False


def test_windows_stream_without_a_console_gets_no_escapes(console):
    console(FakeKernel32(mode=None))
    assert _console.ansi_escapes(Tty()) is False
    assert _console.ansi_escapes(io.StringIO()) is False  # no fileno at all


def test_status_line_redraws_with_escapes_where_understood():
    out = io.StringIO()
    line = _console.StatusLine(out)
    line.show("dopp 5/s")
    line.show("dopp 12/s")
    line.end()
    assert out.getvalue() == "\r\x1b[Kdopp 5/s\r\x1b[Kdopp 12/s\n"


def test_status_line_on_a_legacy_console_pads_instead(console):
    """No escape bytes reach a console that would print them; a shorter line is padded
    with spaces over the longer one before it."""
    console(FakeKernel32(mode=0x3, settable=False))
    out = Tty()
    line = _console.StatusLine(out)
    line.show("dopp 12/s | reconnects 0")
    line.show("dopp 5/s")
    assert "\x1b" not in out.getvalue()
    assert out.getvalue() == "\rdopp 12/s | reconnects 0\r" + "dopp 5/s".ljust(len("dopp 12/s | reconnects 0"))


def _trade(symbol: str) -> Trade:
    return Trade(
        venue="dopp", symbol=symbol, trade_id="1", price=Decimal("1.5"), amount=Decimal("2"),
        side=Side.BUY, timestamp_ms=1_700_000_000_000, received_ns=0,
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_a_cp1252_stream_writes_any_symbol_escaped(fmt):
    """A console or pipe in cp1252 (Windows' default outside UTF-8 mode): a character it
    lacks fails the write as it is, and is escaped once made tolerant."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252", newline="")
    with pytest.raises(UnicodeEncodeError):
        TradeWriter(stream, fmt).write(_trade("BTC\u2192USD"))
    stream = io.TextIOWrapper(io.BytesIO(), encoding="cp1252", newline="")
    _console.tolerant_encoding(stream)
    TradeWriter(stream, fmt).write(_trade("BTC\u2192USD \u20ac"))
    stream.flush()
    written = stream.buffer.getvalue()  # type: ignore[attr-defined]
    assert b"BTC\\u2192USD \x80" in written  # the euro sign exists in cp1252: kept


def test_a_utf8_stream_is_left_strict():
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    _console.tolerant_encoding(stream)
    assert stream.errors == "strict"


# -- transport ----------------------------------------------------------------------


def test_socket_error_text_on_windows_is_winsock_s(windows, monkeypatch):
    """SO_ERROR holds a Winsock number there (10061), which os.strerror does not know."""
    monkeypatch.setattr(ctypes, "FormatError", lambda code: "No connection could be made (%d). " % code, raising=False)
    assert _transport.strerror(10061) == "No connection could be made (10061)."


def test_socket_error_text_on_posix():
    assert _transport.strerror(111) == os.strerror(111)
