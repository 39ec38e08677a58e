"""Reading frames off a connected socket, the fast way.

websocket-client asks the socket for each frame's header, length and payload separately
(three or more ``recv`` system calls per frame, and about 10 µs of Python per frame).
:class:`BufferedSocket` serves those from one large read, and :class:`FrameLoop` (a
websocket-client custom dispatcher) takes complete, unfragmented data frames (and pongs)
straight from that buffer; a frame that a read cut in two is completed by the next read.
Everything else (control frames, fragments, frames over :data:`CARRY_LIMIT`, any
protocol error) goes through websocket-client, which reads it from the same buffer.

The loop's waits use :mod:`tradefeed._transport`'s selector and wake socket (see there).
Nothing here knows about venues, threads or trades.
"""

from __future__ import annotations

import mmap
import selectors
import socket
import ssl
import threading
import time
from typing import Any, Callable

from ._transport import Selector, drain

__all__ = ["BufferedSocket", "FrameLoop", "READ_SIZE", "CARRY_LIMIT", "WAITING_READ_SIZE"]


#: bytes asked of the kernel per read: 64 frames of 4 KiB, or 500 one-trade Dopp frames
READ_SIZE = 256 * 1024
#: bytes asked of the kernel by a read that waits (the handshake's reply, websocket-client
#: reading a long frame: it asks for 16 KiB at a time): small enough for the C allocator's
#: heap, never its mmap threshold (128 KiB)
WAITING_READ_SIZE = 16 * 1024
#: the largest frame (header included) the frame loop completes itself when a read ends
#: inside it; a longer one is read by websocket-client
CARRY_LIMIT = READ_SIZE
_scratch = threading.local()


def _read(sock: socket.socket, rest: bytes = b"") -> bytes:
    """*rest* followed by one non-blocking read of up to :data:`READ_SIZE` bytes (just
    *rest* at end of stream), through a buffer kept per thread (each connection thread's
    own, for its whole life): the bytes are copied once, whatever the split.

    ``sock.recv(READ_SIZE)`` would malloc 256 KiB per read and shrink it to what came:
    once glibc's adaptive mmap threshold has risen past that size, those blocks come from
    the thread's heap, and the small bytes left behind among them fragment it; resident
    memory then grows for hours (the chaos soak saw 0.5 MiB a minute).  Here the only
    allocation per read is the bytes returned.

    :raises BlockingIOError: nothing to read yet (``ssl.SSLWantReadError`` for TLS: no
        complete record yet).
    """
    view = getattr(_scratch, "view", None)
    if view is None:  # anonymous memory: a page is resident only once a read reached it,
        # so an idle connection's thread holds a page or two, not 256 KiB (any platform)
        view = _scratch.view = memoryview(mmap.mmap(-1, 2 * READ_SIZE))
    kept = len(rest)
    if kept:
        view[:kept] = rest
    count = sock.recv_into(view[kept : kept + READ_SIZE])
    return bytes(view[: kept + count])


#: what a non-blocking read raises when there is nothing to read yet
_NOTHING_YET = (BlockingIOError, ssl.SSLWantReadError)


class BufferedSocket:
    """*sock* with ``recv`` served from one large read; every other attribute is the
    socket's own (``send``, ``shutdown``, ``close``...).

    The socket itself is made non-blocking, and its timeout (the one it had, or one set
    later with :meth:`settimeout`) is kept here: :meth:`recv` waits for data up to that
    long, as a socket with a timeout would, and :meth:`gettimeout` reports it, so
    websocket-client's sends wait for a full send buffer as long as before.  A socket with
    a timeout polls the kernel before every read; here a read whose readiness is already
    known (the frame loop waited for it, or just wants to know if more came) is one
    system call.

    Only the connection thread calls ``recv`` and ``fill``; other threads may send or
    shut down.
    """

    __slots__ = ("sock", "_buf", "_pos", "_secure", "_failed", "_timeout")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""
        self._pos = 0
        self._secure = isinstance(sock, ssl.SSLSocket)
        self._failed: OSError | None = None  # what fill() met, for the next recv() to raise
        self._timeout = sock.gettimeout()
        sock.settimeout(0.0)

    def gettimeout(self) -> float | None:
        return self._timeout

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def fill(self) -> bool:
        """Read what the kernel holds now, without waiting, after the unread rest of the
        buffer (the start of a frame :meth:`incomplete` found); True if bytes came.

        End of stream and errors are left for websocket-client to meet through
        :meth:`recv`, so that it reports them exactly as it always does."""
        buf, pos = self._buf, self._pos
        rest = buf[pos:] if pos < len(buf) else b""
        try:
            data = _read(self.sock, rest)
        except _NOTHING_YET:
            return False
        except OSError as err:  # ssl.SSLError too
            self._failed = err
            return False
        if len(data) == len(rest):
            return False
        self._buf, self._pos = data, 0
        return True

    def recv(self, size: int) -> bytes:
        """Up to *size* bytes: from the buffer, or one read of :data:`READ_SIZE` when it is
        empty, waiting up to the timeout for it (``b""`` at end of stream).

        :raises TimeoutError: nothing came within the timeout.
        """
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed
            buf = self._read_waiting()
            if not buf:
                return buf
            self._buf, pos = buf, 0
        end = pos + size
        self._pos = end
        if pos == 0 and end >= len(buf):
            return buf  # all of it: no copy
        return buf[pos:end]

    def _read_waiting(self) -> bytes:
        """One read that waits up to the timeout, as the socket's own timeout would have.
        Rare (the handshake's reply, a frame longer than :data:`CARRY_LIMIT`, a TLS record
        in pieces), so the socket's timeout is set for it and taken off again: the wait
        happens in C, and an idle connection's thread keeps no deeper stack for it (a
        ``selectors`` wait here cost 3.5 KiB per connection).  A plain ``recv`` of
        :data:`WAITING_READ_SIZE`, not the thread's read buffer: a connection that never
        streams (its handshake's reply is all it read) then never touches a page of that
        buffer (4 KiB per idle connection).  Another thread's send
        meanwhile still finds the descriptor non-blocking (Python keeps it so for any
        timeout) and waits as websocket-client does.

        :raises TimeoutError: nothing came in time (``socket.timeout`` is one)."""
        sock = self.sock
        sock.settimeout(self._timeout)
        try:
            return sock.recv(WAITING_READ_SIZE)
        finally:
            sock.settimeout(0.0)

    def data_frame(self) -> bytes | None:
        """The payload of the next frame if the buffer holds all of it and it is a plain
        data frame (FIN, no RSV bits, text or binary, unmasked as a server's must be);
        else None, and nothing is consumed: websocket-client reads that frame."""
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 2:
            return None
        first, length = buf[pos], buf[pos + 1]
        if first != 0x81 and first != 0x82 or length & 0x80:
            return None
        start = pos + 2
        if length == 126:
            if avail < 4:
                return None
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            start = pos + 4
        elif length == 127:
            if avail < 10:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            start = pos + 10
        end = start + length
        if end > len(buf):
            return None
        self._pos = end
        return buf[start:end]

    def pong(self) -> bool:
        """Consume a complete pong frame at the head of the buffer; True if there was
        one (the answer to a liveness ping: read here, no websocket-client round trip)."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 2 or buf[pos] != 0x8A or buf[pos + 1] > 125:  # FIN pong, unmasked
            return False
        end = pos + 2 + buf[pos + 1]
        if end > len(buf):
            return False
        self._pos = end
        return True

    def incomplete(self) -> bool:
        """Does the buffer end inside a frame the fast path reads (a plain data frame or a
        pong, up to :data:`CARRY_LIMIT` bytes)?  :meth:`fill` then completes it, rather
        than websocket-client reading it piece by piece (the head of nearly every read of
        a busy stream cuts a frame in two)."""
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail <= 0:
            return False
        first = buf[pos]
        if first != 0x81 and first != 0x82 and first != 0x8A:
            return False
        if avail < 2:
            return True
        length = buf[pos + 1]
        if length & 0x80 or first == 0x8A and length > 125:
            return False  # masked, or a bad pong: websocket-client refuses it
        head = 2 if length < 126 else 4 if length == 126 else 10
        if avail < head:
            return True
        if length == 126:
            length = (buf[pos + 2] << 8) | buf[pos + 3]
        elif length == 127:
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        return avail < head + length <= CARRY_LIMIT

    def buffered(self) -> bool:
        """Are bytes ready to read without a system call (here, or inside TLS)?"""
        return self._pos < len(self._buf) or self.decrypted()

    def decrypted(self) -> bool:
        """Does TLS hold bytes already decrypted (which no wait on the socket would see)?"""
        return self._secure and self.sock.pending() > 0  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class FrameLoop:
    """websocket-client's custom-dispatcher hook (the one ``rel`` plugs into), driving
    ``WebSocketApp.run_forever`` on the calling thread.

    The stock dispatcher polls the kernel socket before every frame; this one reads
    frames back to back while :class:`BufferedSocket` holds bytes, and polls only when
    it is empty.  It never installs signal handlers.  Sends are written in full here.

    :param reader: the buffered socket given to the ``WebSocketApp``.
    :param running: true while the app should keep reading (``app.keep_running``).
    :param on_data: called with each data frame's payload (bytes) that this loop reads
        itself; the app's ``on_message`` gets the frames websocket-client reads.
    :param on_pong: called for each pong this loop reads itself.
    :param mid_message: true while websocket-client holds part of a fragmented message
        (checked after each frame it reads): only continuation frames may follow then,
        so every frame goes to websocket-client, which enforces that.
    :param wake: the read end of a wake socket (see :func:`wake`), watched beside the
        socket: a wake-up with :attr:`interrupted` set ends the idle wait at once.

    :meth:`close` releases the selector.
    """

    def __init__(
        self,
        reader: BufferedSocket,
        running: Callable[[], bool],
        on_data: Callable[[bytes], None],
        mid_message: Callable[[], bool] = lambda: False,
        on_pong: Callable[[], None] = lambda: None,
        wake: socket.socket | None = None,
    ) -> None:
        self._reader = reader
        self._running = running
        self._on_data = on_data
        self._mid_message = mid_message
        self._on_pong = on_pong
        self._wake = wake
        self._readable = False  # pending() just saw the socket readable: no need to wait
        #: set (with a wake-up) when the socket was shut down to end this loop
        self.interrupted = False
        self._selector = Selector()
        self._selector.register(reader.sock, selectors.EVENT_READ, True)  # data True: the socket
        if wake is not None:
            self._selector.register(wake, selectors.EVENT_READ, False)

    def close(self) -> None:
        self._selector.close()

    def pending(self) -> bool:
        """More frames can be read at once: bytes buffered, or waiting in the kernel.

        The kernel is asked with a zero-timeout poll, not a read: on the common answer
        (nothing yet) a non-blocking read would raise, and building that exception costs
        more than the poll."""
        if self._reader.buffered():
            return True  # (the start of a frame alone counts: its rest is on its way)
        for key, _ in self._selector.select(0):
            if key.data:
                self._readable = True  # the read loop's next step is a read: it need not wait
                return True
        return False

    def _wait(self) -> None:
        """Sleep until the socket is readable or the loop is interrupted: no timeout, so
        an idle connection costs no wake-ups.

        An interrupt (``stop()`` without a close handshake, a liveness check) shuts the
        socket down, sets :attr:`interrupted` and wakes this wait; the read that follows
        then fails or ends at once on every platform (Windows need not wake a ``select``
        for a socket shut down under it).  A wake-up without an interrupt (``stop()``
        that sent a close frame) waits on, for the peer's reply."""
        while True:
            readable = False
            for key, _ in self._selector.select():
                if key.data:
                    readable = True
                else:  # drained even when the socket is ready too: a wake-up is never left over
                    drain(self._wake)
            if readable or self.interrupted:
                return

    def read(self, sock: Any, read_callback: Any, check_callback: Any = None) -> None:
        reader, running, wait, on_data = self._reader, self._running, self._wait, self._on_data
        data_frame, pong, on_pong, incomplete = reader.data_frame, reader.pong, self._on_pong, reader.incomplete
        fast = True  # False while a fragmented message is being received
        while running():
            if fast:
                payload = data_frame()
                if payload is not None:
                    on_data(payload)
                    continue
                if pong():
                    on_pong()
                    continue
            # an empty buffer, or one that ends inside a frame the fast path reads (a
            # busy stream's reads cut a frame in two): read on after it
            if not reader.buffered() or fast and incomplete():
                if not self._readable and not reader.decrypted():
                    wait()
                self._readable = False
                if reader.fill():
                    continue  # whatever came in, the fast path looks at it first
                # nothing yet (a TLS record in pieces, an interrupt), an error or the end:
                # websocket-client reads on (waiting up to the timeout), or meets it
            if not read_callback():
                break
            fast = not self._mid_message()

    def buffwrite(self, sock: Any, data: bytes | str, send: Any, handle_disconnect: Any) -> None:
        view = memoryview(data.encode() if isinstance(data, str) else data)
        while view:
            view = view[send(sock, view) :]

    def signal(self, signum: int, handler: Any) -> None:
        """Not ours to touch: the application owns its signal handlers."""

    def abort(self) -> None:
        """Nothing to abort: ``read`` ends when the app stops running."""

    def timeout(self, seconds: float, callback: Any, *args: Any) -> None:
        """Used by websocket-client only for its own ping checks and reconnects, which
        tradefeed turns off; honoured anyway, on the calling thread."""
        if seconds:
            time.sleep(seconds)
        callback(*args)
