"""The mock's HTTP layer against hostile clients: what aiohttp's parser rejects is answered in the
error envelope (415, 431, 400), slow headers and bodies get 408, idle connections close, a
connection cap sheds stalled connections first, and floods are logged once, not per event.

Every server here sets short timeouts of its own; the waits are generous safety nets."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import logging
import select
import socket
import time
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver import ConnectionLimits, MockConfig, MockServer
from mockserver._config import FD_RESERVE
from mockserver._protocol import throttle_accept_errors

from ..conftest import captured_logs

NET = 30.0  # seconds: a safety net for any answer that should come at once
CHAT = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
POST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


def connect(server: MockServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=NET)
    sock.settimeout(NET)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (a FIN, or a reset), waiting up to NET seconds."""
    sock.settimeout(NET)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def one_response(sock: socket.socket) -> tuple[int, bytes]:
    """Read exactly one HTTP answer from ``sock``: its status and body."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read()


def exchange(server: MockServer, data: bytes) -> bytes:
    """Send ``data`` on a new connection; all the server answered before it closed."""
    with connect(server) as sock:
        sock.sendall(data)
        return read_all(sock)


def answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """The first HTTP answer in ``raw``: status, headers (lower-case names), body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", len(body)))
    return int(status_line.split()[1]), headers, body[:length]


def envelope(raw: bytes) -> tuple[int, str | None, str]:
    """Status, error code and content type of the first answer, which must be the envelope."""
    status, headers, body = answer(raw)
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return status, error["code"], headers["content-type"].split(";")[0]


@pytest.fixture
def quick(start_mock):
    """A mock waiting 1 s for headers and bodies, 2 s for an idle connection."""
    limits = ConnectionLimits(header_timeout=1.0, body_timeout=1.0, idle_timeout=2.0)
    return start_mock(limits=limits)


# --- protocol errors in the envelope -------------------------------------------------------


def _with_body(headers: bytes, body: bytes) -> bytes:
    return POST + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body


PROTOCOL_ERRORS = {
    "content-encoding-br": (_with_body(b"Content-Encoding: br\r\n", CHAT), 415),
    "content-encoding-zstd": (_with_body(b"Content-Encoding: zstd\r\n", CHAT), 415),
    "content-encoding-unknown": (_with_body(b"Content-Encoding: xyz\r\n", CHAT), 415),
    "content-encoding-twice": (_with_body(b"Content-Encoding: gzip, gzip\r\n", CHAT), 415),
    "ten-thousand-headers": (
        POST + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n",
        431,
    ),
    "eight-kb-header-line": (POST + b"X-Long: " + b"a" * 8192 + b"\r\n\r\n", 431),
    "bad-chunk-size": (POST + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-without-crlf": (POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400),
    "content-length-and-chunked": (
        POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "garbage-request-line": (b"HELLO THERE\r\n\r\n", 400),
    "tls-on-plain-port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),
}


@pytest.mark.parametrize(
    ("data", "status"), list(PROTOCOL_ERRORS.values()), ids=list(PROTOCOL_ERRORS)
)
def test_protocol_errors_are_answered_in_the_envelope(mock, data, status):
    got_status, code, content_type = envelope(exchange(mock, data))
    assert (got_status, content_type) == (status, "application/json")
    assert code is not None


def test_unsupported_encodings_say_which_in_a_415(mock):
    status, _, body = answer(exchange(mock, _with_body(b"Content-Encoding: br\r\n", CHAT)))
    error = json.loads(body)["error"]
    assert (status, error["code"]) == (415, "unsupported_content_encoding")
    assert "br" in error["message"]


def test_a_gzip_body_is_still_decoded(mock):
    status, _, body = answer(
        exchange(
            mock,
            _with_body(b"Content-Encoding: gzip\r\nConnection: close\r\n", gzip.compress(CHAT)),
        )
    )
    assert status == 200
    assert json.loads(body)["object"] == "chat.completion"


def test_broken_chunked_framing_mid_body_gets_one_400_in_the_envelope(mock):
    with connect(mock) as sock:
        sock.sendall(POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\n" + CHAT[:5] + b"\r\n")
        time.sleep(0.3)  # the handler now reads the body
        sock.sendall(b"QQ\r\n")
        raw = read_all(sock)
    assert envelope(raw) == (400, "bad_request", "application/json")
    assert raw.count(b"HTTP/1.") == 1  # one answer, not the envelope and aiohttp's own


def test_malformed_requests_are_logged_once_per_interval_not_each(mock):
    with captured_logs("mockserver", "aiohttp") as records:
        for _ in range(30):
            exchange(mock, b"HELLO THERE\r\n\r\n")
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= 2, [r.getMessage() for r in warnings]
    assert not any(r.exc_info for r in records)  # no traceback per bad request


# --- timeouts --------------------------------------------------------------------------------


def test_headers_sent_one_byte_at_a_time_get_408_and_the_connection_closes(quick):
    request = POST + b"X-Slow: " + b"y" * 200
    started = time.monotonic()
    with connect(quick) as sock:
        for byte in request:  # a byte every 0.1 s until the server says something
            if select.select([sock], [], [], 0.1)[0]:
                break
            sock.sendall(bytes([byte]))
        raw = read_all(sock)
    assert envelope(raw) == (408, "request_timeout", "application/json")
    assert answer(raw)[1]["connection"] == "close"
    assert time.monotonic() - started < NET  # closed long before the drip would end


def test_a_body_that_does_not_arrive_gets_408_with_a_request_id(quick):
    with connect(quick) as sock:
        sock.sendall(POST + b"Content-Length: 1000\r\n\r\n{")
        raw = read_all(sock)
    _, headers, _ = answer(raw)
    assert envelope(raw) == (408, "request_timeout", "application/json")
    assert headers["x-request-id"].startswith("req_")
    assert headers["connection"] == "close"


def test_a_slow_body_that_arrives_in_time_is_answered(start_mock):
    server = start_mock(limits=ConnectionLimits(body_timeout=NET))
    with connect(server) as sock:
        sock.sendall(POST + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(CHAT))
        for i in range(0, len(CHAT), 10):
            sock.sendall(CHAT[i : i + 10])
            time.sleep(0.05)
        assert answer(read_all(sock))[0] == 200


def test_an_idle_keep_alive_connection_is_closed(quick):
    with connect(quick) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert one_response(sock)[0] == 200
        started = time.monotonic()
        assert read_all(sock) == b""  # nothing more, then closed
        assert time.monotonic() - started < NET


def test_a_keep_alive_connection_idle_past_the_header_timeout_still_serves(start_mock):
    limits = ConnectionLimits(header_timeout=0.3, idle_timeout=NET)
    server = start_mock(limits=limits)
    with connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert one_response(sock)[0] == 200
            time.sleep(1.0)  # idle, not a request being sent: no 408


def test_a_body_ending_its_own_write_starts_no_header_timer(start_mock):
    server = start_mock(limits=ConnectionLimits(header_timeout=0.3, idle_timeout=NET))
    with connect(server) as sock:
        sock.sendall(POST + b"Content-Length: %d\r\n\r\n" % len(CHAT) + CHAT[:10])
        time.sleep(0.1)
        sock.sendall(CHAT[10:])  # the rest of the body, exactly
        assert one_response(sock)[0] == 200
        time.sleep(1.0)  # idle: no 408 may come
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert one_response(sock)[0] == 200


def test_pipelined_requests_are_each_answered(quick):
    one = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    raw = exchange(quick, one * 2 + b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.count(b"HTTP/1.1 200 OK") == 3
    assert b"408" not in raw


# --- the connection cap ----------------------------------------------------------------------


def test_a_flood_of_stalled_connections_does_not_stop_service(start_mock):
    server = start_mock(limits=ConnectionLimits(max_connections=5))
    with captured_logs("mockserver") as records:
        stalled = [connect(server) for _ in range(20)]
        try:
            for i, sock in enumerate(stalled):  # headers on the way, or the body
                sock.sendall(POST[:10] if i % 2 else POST + b"Content-Length: 99\r\n\r\n{")
            time.sleep(0.2)
            for _ in range(3):
                assert answer(exchange(server, b"GET /health HTTP/1.0\r\n\r\n"))[0] == 200
            assert closed(stalled[0])  # the oldest was shed
        finally:
            for sock in stalled:
                sock.close()
    shed = [r for r in records if "the cap" in r.getMessage()]
    assert 1 <= len(shed) <= 2  # once per interval, not per connection
    assert not [r.getMessage() for r in records if r.levelno >= logging.ERROR]


def test_a_body_read_after_the_client_left_is_a_499_not_an_error():
    from mockserver._errors import CLIENT_CLOSED_REQUEST, error_answer

    class Gone:
        transport, method, path = None, "POST", "/v1/chat/completions"

    def render(request, error):
        raise AssertionError(f"rendered {error.status}")

    with captured_logs("mockserver") as records:
        response = error_answer(Gone(), RuntimeError("Connection closed."), render)
    assert response.status == CLIENT_CLOSED_REQUEST
    assert not [r for r in records if r.levelno >= logging.ERROR]


def test_a_request_being_answered_is_not_shed(start_mock):
    server = start_mock(limits=ConnectionLimits(max_connections=2), ttft=3.0)
    with connect(server) as streaming:
        body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'
        streaming.sendall(_with_body(b"Connection: close\r\n", body))
        head = b""
        while b"\r\n\r\n" not in head:  # its headers: it is being answered (3 s of TTFT)
            head += streaming.recv(1)
        with connect(server) as stalled:
            stalled.sendall(POST[:10])
            time.sleep(0.2)
            assert answer(exchange(server, b"GET /health HTTP/1.0\r\n\r\n"))[0] == 200
            assert closed(stalled)  # shed, not the stream
        raw = head + read_all(streaming)
        assert b"data: [DONE]\n\n" in raw and raw.endswith(b"0\r\n\r\n")  # whole


def test_connection_limits_are_validated_and_the_cap_keeps_a_reserve():
    for bad in ({"header_timeout": 0}, {"body_timeout": -1}, {"idle_timeout": float("nan")}):
        with pytest.raises(ValueError, match="must be > 0"):
            ConnectionLimits(**bad)
    with pytest.raises(ValueError, match="max_connections"):
        ConnectionLimits(max_connections=0)
    assert ConnectionLimits(max_connections=7).connection_cap() == 7
    resource = pytest.importorskip("resource")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        assert ConnectionLimits().connection_cap() == max(soft - FD_RESERVE, soft // 2)


def test_the_mock_command_rejects_a_zero_timeout(capsys):
    from chatcompat.cli import main

    assert main(["mock", "--header-timeout", "0"]) == 2
    assert "header_timeout must be > 0" in capsys.readouterr().err


async def test_accept_failures_are_logged_once_per_interval_and_other_errors_pass():
    loop = asyncio.get_running_loop()
    seen = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: seen.append(context["message"]))
    try:
        throttle_accept_errors(loop)
        throttle_accept_errors(loop)  # twice: still one filter
        handler = loop.get_exception_handler()
        assert handler is not None
        with captured_logs("mockserver") as records:
            for _ in range(1000):
                handler(
                    loop,
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(24, "Too many open files"),
                    },
                )
            handler(loop, {"message": "something else"})
        assert len(records) == 1
        assert "Too many open files" in records[0].getMessage()
        assert seen == ["something else"]
    finally:
        loop.set_exception_handler(previous)


def test_the_access_log_redacts_credentials_in_the_query(start_mock):
    from mockserver._protocol import AccessLogger

    class Request:
        remote, method, version = "127.0.0.1", "GET", (1, 1)
        path_qs = "/v1/models?api-key=sk-secret-123&key=abc&limit=2"
        headers = MappingProxyType({})
        protocol = None

    class Response:
        status, body_length = 200, 10

    with captured_logs("test.access") as records:
        AccessLogger(logging.getLogger("test.access"), "").log(Request(), Response(), 0.01)
    (line,) = [r.getMessage() for r in records]
    assert "sk-secret-123" not in line and "abc" not in line
    assert "api-key=[REDACTED]&key=[REDACTED]&limit=2" in line


def test_config_limits_reach_the_server_in_a_thread():
    config = MockConfig(limits=ConnectionLimits(header_timeout=0.5))
    with MockServer(config) as server, connect(server) as sock:
        sock.sendall(b"GET /he")
        assert envelope(read_all(sock))[0] == 408


@pytest.fixture
def brisk(start_mock):
    """A mock that waits 0.3 s for headers and bodies and 0.5 s on an idle connection."""
    limits = ConnectionLimits(header_timeout=0.3, body_timeout=0.3, idle_timeout=0.5)
    return start_mock(limits=limits)


LINES = st.sampled_from(
    [
        b"POST /v1/chat/completions HTTP/1.1",
        b"GET /health HTTP/1.1",
        b"Host: t",
        b"Content-Length: 5",
        b"Content-Length: -1",
        b"Transfer-Encoding: chunked",
        b"Content-Encoding: br",
        b"Content-Encoding: gzip",
        b"Content-Type: application/json",
        b"X-Long: " + b"a" * 9000,
        b"",
        b"0",
        b"zz",
    ]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(st.one_of(LINES, st.binary(max_size=40)), max_size=8))
def test_whatever_the_bytes_every_answer_is_json_and_never_5xx(brisk, lines):
    raw = exchange(brisk, b"\r\n".join(lines) + b"\r\n\r\n")
    if raw:  # some inputs end in a timeout's 408, some in a plain close
        status, headers, _ = answer(raw)
        assert status < 500, raw[:300]
        assert headers["content-type"].startswith("application/json"), raw[:300]
