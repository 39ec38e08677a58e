"""The socket waits of tradefeed._transport, on real loopback sockets: the frame loop's
idle wait and its interrupt, the connect wait's timeout and wake-up."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Iterator

import pytest

from tradefeed._framing import BufferedSocket, FrameLoop
from tradefeed._transport import drain, open_socket, wake, writable

pytestmark = pytest.mark.timeout(30)


def text_frame(payload: bytes) -> bytes:
    """An unmasked server text frame (payload under 126 bytes)."""
    return bytes([0x81, len(payload)]) + payload


@pytest.fixture
def wake_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    yield r, w
    r.close()
    w.close()


class Loop:
    """A FrameLoop over one end of a socketpair, run on a thread; records what it did."""

    def __init__(self, wake_r: socket.socket, timeout: float | None = None) -> None:
        self.ours, self.peer = socket.socketpair()
        self.ours.settimeout(timeout)
        self.reader = BufferedSocket(self.ours)
        self.frames: list[bytes] = []
        self.got = threading.Condition()
        self.ended: BaseException | None = None
        self.loop = FrameLoop(self.reader, lambda: True, self._data, wake=wake_r)
        self.thread = threading.Thread(target=self._run, name="test-frame-loop")
        self.thread.start()

    def _data(self, payload: bytes) -> None:
        with self.got:
            self.frames.append(payload)
            self.got.notify_all()

    def _read_callback(self) -> bool:
        """Stands in for websocket-client's read: ends the loop on EOF or an error."""
        return bool(self.reader.recv(2))

    def _run(self) -> None:
        try:
            self.loop.read(self.ours, self._read_callback)
        except BaseException as err:  # noqa: BLE001 - recorded for the test
            self.ended = err

    def wait_frames(self, n: int) -> bool:
        with self.got:
            return self.got.wait_for(lambda: len(self.frames) >= n, 10)

    def close(self) -> None:
        self.peer.close()
        self.thread.join(10)
        self.loop.close()
        self.ours.close()


def test_frame_loop_reads_frames_and_a_plain_wake_up_keeps_it_waiting(wake_pair):
    """A wake-up without an interrupt (a stop() that sent a close frame) is drained and
    the loop waits on for the peer: the next frame is still read."""
    wake_r, wake_w = wake_pair
    loop = Loop(wake_r)
    try:
        loop.peer.sendall(text_frame(b"one"))
        assert loop.wait_frames(1)
        wake(wake_w)
        loop.peer.sendall(text_frame(b"two"))
        assert loop.wait_frames(2)
        assert loop.frames == [b"one", b"two"] and loop.thread.is_alive()
        with pytest.raises(BlockingIOError):  # the loop drained the wake-up
            wake_r.recv(16)
    finally:
        loop.close()
    assert loop.ended is None  # the peer's close ended it: EOF


def test_an_interrupt_ends_the_wait_even_if_the_socket_never_turns_readable(wake_pair):
    """Windows need not wake a select() for a socket shut down under it: an interrupt
    (the flag and a wake-up) makes the loop read at once whatever the socket says.  Here
    the socket is not shut down at all, so that read blocks until its timeout."""
    wake_r, wake_w = wake_pair
    loop = Loop(wake_r, timeout=0.2)
    try:
        loop.peer.sendall(text_frame(b"live"))
        assert loop.wait_frames(1)
        loop.loop.interrupted = True
        wake(wake_w)
        loop.thread.join(10)
        assert not loop.thread.is_alive()
        assert isinstance(loop.ended, TimeoutError)  # the read after the interrupt
    finally:
        loop.close()


def test_pending_sees_bytes_in_the_kernel_not_wake_ups(wake_pair):
    wake_r, wake_w = wake_pair
    ours, peer = socket.socketpair()
    loop = FrameLoop(BufferedSocket(ours), lambda: True, lambda data: None, wake=wake_r)
    try:
        assert not loop.pending()
        wake(wake_w)
        assert not loop.pending()  # a wake-up is not data
        peer.sendall(text_frame(b"x"))  # a socketpair delivers before sendall returns
        assert loop.pending()
    finally:
        loop.close()
        drain(wake_r)
        ours.close()
        peer.close()


@pytest.fixture
def full_listener() -> Iterator[tuple[str, int]]:
    """A listener whose accept queue is full: a further connect stays in progress (its
    SYNs go unanswered), so the connect wait itself is what is tested."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers: list[socket.socket] = []
    host, port = server.getsockname()[:2]
    try:
        for _ in range(4):  # the queue holds backlog + 1: fill it and then some
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((host, port))
            fillers.append(s)
        yield host, port
    finally:
        for s in fillers:
            s.close()
        server.close()


def _open(host: str, port: int, timeout: float, wake_r: socket.socket | None) -> Any:
    return open_socket(host, port, secure=False, timeout=timeout, wake=wake_r, ssl_context=None, register=lambda s: None)


def test_connect_wait_times_out(full_listener):
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out after 0.5s"):
        _open(*full_listener, 0.5, None)
    assert time.monotonic() - started >= 0.5


def test_connect_wait_ends_on_a_wake_up(full_listener, wake_pair):
    """stop() during a connect: open_socket returns None at once, not after the timeout."""
    wake_r, wake_w = wake_pair
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(_open(*full_listener, 60, wake_r)), name="test-connect")
    thread.start()
    wake(wake_w)
    thread.join(10)
    assert not thread.is_alive() and result == [None]


def test_connect_refused_names_the_cause():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        _open("127.0.0.1", port, 5, None)


def test_writable():
    a, b = socket.socketpair()
    try:
        assert writable(a)
        assert not writable(None)
    finally:
        a.close()
        b.close()
    assert not writable(a)  # closed: no descriptor


def test_buffered_socket_reads_without_waiting_and_waits_in_recv():
    """The socket is made non-blocking (a read whose readiness is known is one system
    call); ``fill`` never waits, ``recv`` waits up to the timeout the socket had, and
    websocket-client still sees that timeout through ``gettimeout``."""
    ours, peer = socket.socketpair()
    ours.settimeout(5.0)
    reader = BufferedSocket(ours)
    try:
        assert ours.gettimeout() == 0.0 and reader.gettimeout() == 5.0
        assert not reader.fill()  # nothing yet: no wait, no error
        sender = threading.Timer(0.05, peer.sendall, (b"late",))
        sender.start()
        assert reader.recv(16) == b"late"  # waited for it
        sender.join()
        peer.sendall(b"now")
        assert reader.fill() and reader.buffered() and reader.recv(16) == b"now"
        reader.settimeout(0.05)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            reader.recv(16)
        assert time.monotonic() - started >= 0.05
        peer.close()
        assert not reader.fill()  # the end of the stream, for recv to meet
        assert reader.recv(16) == b""
    finally:
        reader.close()
        peer.close()


def _wire() -> tuple[bytes, list[bytes]]:
    """Frames with 7-, 16- and 64-bit lengths and a pong, and what the loop gets of them."""
    big, mid = b"x" * 70_000, b"y" * 300
    wire = text_frame(b"first") + bytes([0x81, 127]) + len(big).to_bytes(8, "big") + big
    wire += bytes([0x8A, 2]) + b"pp" + bytes([0x81, 126]) + len(mid).to_bytes(2, "big") + mid
    return wire, [b"first", big, b"<pong>", mid]


def test_a_read_cut_inside_a_frame_is_completed_by_the_next_read():
    """Every cut, inside a header or a payload: the buffer says it ends inside a frame,
    the next read goes after the frame's start, and the frame comes out whole."""
    wire, expected = _wire()
    for cut in (1, 3, 8, 12, 40_000, 70_018, 70_020, 70_022, 70_024, 70_100):
        ours, peer = socket.socketpair()
        ours.settimeout(5)
        reader = BufferedSocket(ours)
        got: list[bytes] = []
        try:
            for last, piece in enumerate((wire[:cut], wire[cut:])):
                peer.sendall(piece)  # a socketpair delivers before sendall returns
                assert reader.fill()
                while True:
                    payload = reader.data_frame()
                    if payload is None and reader.pong():
                        payload = b"<pong>"
                    if payload is None:
                        break
                    got.append(payload)
                assert reader.incomplete() is not bool(last), cut
            assert got == expected and not reader.buffered(), cut
        finally:
            reader.close()
            peer.close()


def test_the_frame_loop_completes_a_cut_frame_itself(wake_pair):
    """The loop waits for the rest of a cut frame and reads it the fast way:
    websocket-client's read (here a stand-in) is never asked."""
    wake_r, _ = wake_pair
    wire, expected = _wire()
    ours, peer = socket.socketpair()
    ours.settimeout(5)
    first_read = threading.Event()

    class Watched(BufferedSocket):
        __slots__ = ()

        def fill(self) -> bool:
            came = super().fill()
            first_read.set()
            return came

    reader = Watched(ours)
    got: list[bytes] = []
    asked: list[bool] = []
    loop = FrameLoop(
        reader, lambda: len(got) < 4, got.append, on_pong=lambda: got.append(b"<pong>"), wake=wake_r
    )
    peer.sendall(wire[:40_000])  # the big frame is cut
    thread = threading.Thread(target=loop.read, args=(ours, lambda: asked.append(True) or False), name="test-loop")
    thread.start()
    try:
        assert first_read.wait(10)  # the loop read the first part
        peer.sendall(wire[40_000:])
        thread.join(10)
    finally:
        loop.close()
        reader.close()
        peer.close()
    assert not thread.is_alive() and got == expected and asked == []

