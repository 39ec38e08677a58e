"""Connection behaviour at the edges: control frames behind data, redirects, many file
descriptors, backoff growth, clean closes without a code, secrets in websocket-client logs."""

from __future__ import annotations

import logging
import resource
import socket

import pytest

from tradefeed import Backoff, FeedClosedError, HandshakeError, Status, TransportError

from .rawserver import RawServer, ping_frame, text_frame, upgrade_response

pytestmark = pytest.mark.timeout(60)

TRADE = (
    b'[{"last_trades":[{"amount":1,"direction":"buy","instrument_name":"X","price":2,'
    b'"timestamp":1767225600000,"trade_id":"1"}]}]'
)


def test_a_trade_followed_by_a_ping_in_one_write_is_delivered_at_once(make_manager, collector):
    """A data frame whose 'more bytes pending' are a ping must not wait for the next data frame."""
    with RawServer(lambda req: upgrade_response(req) + text_frame(TRADE) + ping_frame(b"hi")) as server:
        manager = make_manager()
        collector.attach(manager)
        manager.add_feed("dopp", url=server.url)
        with manager:
            assert collector.wait_trades(1, timeout=5)
    assert collector.trades[0].trade_id == "1"


def test_a_redirect_on_upgrade_is_not_followed(make_manager, collector):
    """A 302 would make websocket-client replay the request (tokens included) to another host: refused."""
    with RawServer(lambda req: b"") as target:
        location = ("Location: %s/elsewhere\r\n" % target.url).encode()
        redirect = b"HTTP/1.1 302 Found\r\n" + location + b"Content-Length: 0\r\n\r\n"
        with RawServer(lambda req: redirect) as server:
            manager = make_manager(backoff=Backoff(initial=0.05, max_delay=0.1))
            collector.attach(manager)
            manager.add_feed("dopp", url=server.url)
            manager.start()
            with pytest.raises(HandshakeError, match="redirect"):
                manager.join(timeout=15)
    assert target.requests == [], "the redirect target was contacted"
    assert len(server.requests) == 1  # and no retry storm


def test_connects_when_descriptors_exceed_1024(make_sim, make_manager, collector):
    """Waiting for a connect uses poll(), so descriptor numbers above 1024 work."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    padding = [socket.socket() for _ in range(1100)]
    try:
        assert max(s.fileno() for s in padding) > 1024
        sim = make_sim(rate=0)
        manager = make_manager()
        collector.attach(manager)
        manager.add_feed("dopp", url=sim.url("dopp"))
        with manager:
            assert collector.wait_trades(20)
    finally:
        for s in padding:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_backoff_grows_while_connections_keep_dying_young(make_sim, make_manager, collector):
    """A venue that sends its snapshot and then drops does not reset the backoff (only a
    connection that stayed up healthy_after seconds does)."""
    sim = make_sim(rate=0)
    manager = make_manager(backoff=Backoff(initial=0.01, max_delay=0.5, jitter=0))
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        for round_ in range(1, 5):
            assert collector.wait_status(Status.CONNECTED, count=round_)
            assert collector.wait_for(lambda c: c.trades)  # data arrived: the connection was "healthy"
            sim.drop_connections("dopp", code=1011)
            assert collector.wait_status(Status.RECONNECTING, count=round_)
    attempts = [e.detail["attempt"] for e in collector.statuses if e.status is Status.RECONNECTING]
    assert attempts[:4] == [1, 2, 3, 4]
    delays = [e.detail["delay"] for e in collector.statuses if e.status is Status.RECONNECTING]
    assert delays[:4] == [0.01, 0.02, 0.04, 0.08]


def test_close_frame_without_a_code_is_1005_not_a_lost_connection(make_manager, collector):
    """An empty close frame is a clean close (1005), told apart from a dropped TCP connection (1006)."""
    empty_close = bytes((0x88, 0x00))
    with RawServer(lambda req: upgrade_response(req) + text_frame(TRADE) + empty_close) as server:
        manager = make_manager(backoff=Backoff(initial=0.05, max_delay=0.1))
        collector.attach(manager)
        manager.add_feed("dopp", url=server.url)
        with manager:
            assert collector.wait_status(Status.DISCONNECTED)
    first = next(e for e in collector.statuses if e.status is Status.DISCONNECTED)
    assert first.detail["code"] == 1005 and isinstance(first.detail["error"], FeedClosedError)
    assert collector.trades[0].trade_id == "1"


def test_bearer_tokens_are_blanked_in_websocket_client_logs(caplog):
    """websocket-client logs refused subprotocols verbatim; tradefeed's filter blanks the token."""
    import tradefeed.connection

    assert tradefeed.connection  # importing the client installs the filter
    with caplog.at_level(logging.DEBUG, logger="websocket"):
        logging.getLogger("websocket").error("Invalid subprotocol: %s", ["authorization#eyJ.secret.sig"])
    assert "eyJ.secret.sig" not in caplog.text and "authorization#***" in caplog.text


def test_a_frame_over_max_frame_bytes_is_reported_not_parsed(make_sim, make_manager, collector):
    """An oversized frame is a ParseError carrying only its first KiB; the feed goes on."""
    from tradefeed import ParseError

    sim = make_sim(rate=0)
    manager = make_manager(max_frame_bytes=32_768)  # the snapshot (~9 KB) fits
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(20)
        sim.venue("dopp").inject("[" + " " * 100_000 + "]")
        sim.venue("dopp").emit(3)
        assert collector.wait_trades(23)
        assert collector.wait_for(lambda c: c.errors)
    (error,) = collector.errors
    assert isinstance(error, ParseError) and "100002 bytes is over max_frame_bytes (32768)" in str(error)
    assert len(error.raw) == 1024


@pytest.mark.parametrize("code, prompt", [(1000, True), (1001, True), (1011, False)])
def test_a_normal_close_of_a_working_connection_reconnects_at_once(make_sim, make_manager, collector, code, prompt):
    """1000/1001 after data (a venue rotating servers) reconnect promptly; 1011 backs off."""
    sim = make_sim(rate=0)
    manager = make_manager(backoff=Backoff(initial=0.2, max_delay=1, jitter=0))
    collector.attach(manager)
    manager.add_feed("dopp", url=sim.url("dopp"))
    with manager:
        assert collector.wait_trades(20)
        sim.drop_connections("dopp", code=code)
        assert collector.wait_status(Status.RECONNECTING)
        assert collector.wait_status(Status.CONNECTED, count=2)
    (reconnect,) = [e for e in collector.statuses if e.status is Status.RECONNECTING]
    # prompt: within min(1 s, initial) = 0.2 s, spread by chance; else the 0.2 s backoff step
    assert (reconnect.detail["delay"] < 0.2) is prompt


@pytest.fixture
def tls_server(tmp_path):
    """A TLS loopback server with a fresh self-signed certificate for 127.0.0.1."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with RawServer(lambda req: upgrade_response(req) + text_frame(TRADE), ssl_context=context) as server:
        yield server, cert


def test_tls_certificates_are_verified_by_default(tls_server, make_manager, collector):
    """A certificate no trusted CA signed is refused: no trade, a TransportError naming the
    certificate, retries with backoff (never a silent fallback to unverified)."""
    server, _ = tls_server
    manager = make_manager(backoff=Backoff(initial=0.05, max_delay=0.1))
    collector.attach(manager)
    manager.add_feed("dopp", url=server.url)
    with manager:
        assert collector.wait_status(Status.RECONNECTING, count=2)
    errors = [e.detail["error"] for e in collector.statuses if e.status is Status.DISCONNECTED]
    # the first attempt names the certificate; a later one may meet a server still
    # tearing down the last (a reset): what matters is that none ever got through
    assert errors and "CERTIFICATE_VERIFY_FAILED" in str(errors[0])
    assert all(isinstance(e, TransportError) for e in errors)
    assert collector.trades == []


def test_ca_file_trusts_a_private_certificate(tls_server, make_manager, collector):
    """ca_file= makes the private CA trusted; the certificate is still checked."""
    server, cert = tls_server
    manager = make_manager(ca_file=cert)
    collector.attach(manager)
    manager.add_feed("dopp", url=server.url)
    with manager:
        assert collector.wait_trades(1)
    assert collector.trades[0].trade_id == "1"


def test_ca_file_must_be_readable(tmp_path, make_manager):
    from tradefeed import ConfigError

    with pytest.raises(ConfigError, match="cannot use ca_file"):
        make_manager(ca_file=tmp_path / "missing.pem")
