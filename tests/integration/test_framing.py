"""The buffered read path: frames taken straight from the read buffer, and every frame
the fast path leaves to websocket-client (fragments, control frames, masked frames,
frames split across reads, protocol errors), over a real loopback socket."""

from __future__ import annotations

import pytest

from tradefeed import Backoff, ParseError, Status
from tradefeed._framing import READ_SIZE

from .rawserver import RawServer, ping_frame, upgrade_response

pytestmark = pytest.mark.timeout(60)


def trades_json(first: int, count: int, padding: str = "") -> bytes:
    records = ",".join(
        '{"amount":1,"direction":"buy","instrument_name":"X","price":2,"timestamp":%d,"trade_id":"%d",'
        '"trade_seq":%d,"note":"%s"}' % (1767225600000 + i, i, i, padding)
        for i in range(first, first + count)
    )
    return ('[{"last_trades":[%s]}]' % records).encode()


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True, rsv: int = 0, mask: bytes | None = None) -> bytes:
    """One WebSocket frame with any header bits, as a (possibly misbehaving) server sends it."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    if n < 126:
        header = bytes((first, n | (0x80 if mask else 0)))
    elif n < 65536:
        header = bytes((first, 126 | (0x80 if mask else 0))) + n.to_bytes(2, "big")
    else:
        header = bytes((first, 127 | (0x80 if mask else 0))) + n.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        header += mask
    return header + payload


def run(make_manager, collector, stream: bytes, wanted: int) -> list[str]:
    with RawServer(lambda req: upgrade_response(req) + stream) as server:
        manager = make_manager(backoff=Backoff(initial=0.05, max_delay=0.1))
        collector.attach(manager)
        manager.add_feed("dopp", url=server.url)
        with manager:
            assert collector.wait_trades(wanted, timeout=20)
    return [t.trade_id for t in collector.trades]


def protocol_error(make_manager, collector, stream: bytes) -> tuple[list[str], str]:
    """Serve *stream* until the feed reconnects over it; the ids delivered by then (and
    after the reconnect's replay, whose repeats are dropped) and the first disconnect's
    error text, lower-cased."""
    with RawServer(lambda req: upgrade_response(req) + stream) as server:
        manager = make_manager(backoff=Backoff(initial=0.05, max_delay=0.1))
        collector.attach(manager)
        manager.add_feed("dopp", url=server.url)
        with manager:
            assert collector.wait_status(Status.RECONNECTING, timeout=10)
            assert collector.wait_trades(1)
    disconnected = [e for e in collector.statuses if e.status is Status.DISCONNECTED]
    assert disconnected
    return [t.trade_id for t in collector.trades], str(disconnected[0].detail.get("error")).lower()


def test_every_kind_of_frame_in_one_stream_arrives_in_order(make_manager, collector):
    """Fast-path frames interleaved with frames websocket-client must read: the order holds."""
    first_half, second_half = trades_json(4, 1)[:20], trades_json(4, 1)[20:]
    stream = b"".join(
        (
            frame(trades_json(1, 1)),  # 7-bit length: fast path
            frame(trades_json(2, 1, "x" * 200)),  # 16-bit length: fast path
            ping_frame(b"p"),  # control: websocket-client answers it
            frame(b"pong", opcode=0xA),  # an (unsolicited) pong: taken by the fast path
            frame(trades_json(3, 1), opcode=0x2),  # binary: fast path
            frame(first_half, fin=False),  # a fragmented message...
            ping_frame(b"q"),  # ...with a control frame between its fragments
            frame(second_half, opcode=0x0),  # ...and its last fragment
            frame(trades_json(5, 1), mask=b"\x01\x02\x03\x04"),  # masked: left to websocket-client
            frame(trades_json(6, 1, "y" * 70_000)),  # 64-bit length
            frame(trades_json(7, 1)),
        )
    )
    assert run(make_manager, collector, stream, 7) == ["1", "2", "3", "4", "5", "6", "7"]


def test_frames_straddling_the_read_buffer_boundary(make_manager, collector):
    """More bytes than one read takes: frames split across reads, and one frame larger
    than a read, all arrive whole and in order."""
    frames, size, n = [], 0, 0
    while size < 2 * READ_SIZE:  # ~1,000-byte frames: some are cut by each read's end
        n += 1
        frames.append(frame(trades_json(n, 1, "z" * (900 + n % 97))))
        size += len(frames[-1])
    n += 1
    frames.append(frame(trades_json(n, 1, "w" * (READ_SIZE + 1000))))  # bigger than one read
    n += 1
    frames.append(frame(trades_json(n, 1)))
    ids = run(make_manager, collector, b"".join(frames), n)
    assert ids == [str(i) for i in range(1, n + 1)]


def test_a_frame_with_reserved_bits_is_a_protocol_error(make_manager, collector):
    """RSV bits without a negotiated extension: websocket-client's error, a reconnect, no trade from it."""
    stream = frame(trades_json(1, 1)) + frame(trades_json(2, 1), rsv=0b100)
    ids, error = protocol_error(make_manager, collector, stream)
    assert ids == ["1"]  # "1" again after reconnecting is a duplicate
    assert "rsv" in error


def test_an_oversized_fast_path_frame_is_reported_not_parsed(make_manager, collector):
    stream = frame(trades_json(1, 1, "v" * 5000)) + frame(trades_json(2, 1))
    with RawServer(lambda req: upgrade_response(req) + stream) as server:
        manager = make_manager(max_frame_bytes=4096)
        collector.attach(manager)
        manager.add_feed("dopp", url=server.url)
        with manager:
            assert collector.wait_trades(1)
            assert collector.wait_for(lambda c: c.errors)
    assert [t.trade_id for t in collector.trades] == ["2"]
    assert isinstance(collector.errors[0], ParseError) and "max_frame_bytes" in str(collector.errors[0])


def test_a_new_message_inside_a_fragmented_one_is_refused(make_manager, collector):
    """A text frame where only a continuation may come is a protocol error (websocket-
    client's rule): the fast path must not slip it through."""
    stream = b"".join(
        (
            frame(trades_json(1, 1)),
            frame(trades_json(2, 1)[:10], fin=False),  # a fragmented message begins,
            ping_frame(b"p"),  # (websocket-client hands control frames back at once)
            frame(trades_json(3, 1)),  # and a new message interrupts it: illegal
            frame(trades_json(4, 1)),
        )
    )
    ids, error = protocol_error(make_manager, collector, stream)
    assert set(ids) == {"1"}
    assert "illegal frame" in error


def test_reads_that_wait_leave_the_thread_read_buffer_untouched():
    """The handshake's reply (any read that waits) is a plain 16 KiB recv: a connection
    that never streams never maps a page of its thread's 256 KiB read buffer, while the
    frame loop's reads (fill) go through that buffer."""
    import socket
    import threading

    from tradefeed import _framing

    ours, peer = socket.socketpair()
    seen: dict[str, object] = {}

    def connection_thread() -> None:
        reader = _framing.BufferedSocket(ours)
        reader.settimeout(5)
        seen["reply"] = reader.recv(1) + reader.recv(100)
        seen["after_reply"] = hasattr(_framing._scratch, "view")
        peer.sendall(b"more")
        loop = _framing.FrameLoop(reader, lambda: False, lambda data: None)
        try:
            loop._wait()  # until "more" is readable
            seen["filled"] = reader.fill()
        finally:
            loop.close()
        seen["after_fill"] = hasattr(_framing._scratch, "view")

    try:
        peer.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
        worker = threading.Thread(target=connection_thread)
        worker.start()
        worker.join(10)
        assert not worker.is_alive()
    finally:
        ours.close()
        peer.close()
    assert seen == {"reply": b"HTTP/1.1 101 Switching Protocols\r\n", "after_reply": False, "filled": True, "after_fill": True}
