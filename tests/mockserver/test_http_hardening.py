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
from mockserver._listen import throttle_accept_errors

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
    assert raw.count(b"HTTP/1.") == 3  # three answers and no other (no 408: ids are random hex)


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
    for bad in (
        {"header_timeout": 0},
        {"body_timeout": -1},
        {"idle_timeout": float("nan")},
        {"write_timeout": 0},
    ):
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
    from mockserver._access_log import AccessLogger

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


# --- clients that do not read, and the cap when every connection is being answered ----------

BIG_STREAM = (
    b'{"model":"m","messages":[{"role":"user","content":"hi"}],"n":128,"logprobs":true,'
    b'"top_logprobs":20,"stream":true}'
)  # about 3 MB of answer


def not_reading(server: MockServer, body: bytes = BIG_STREAM) -> socket.socket:
    """A connection that sends three whole requests of ``body`` (about 9 MB of answers: more
    than the kernel's buffers on loopback hold) and then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(NET)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(_with_body(b"", body) * 3)
    return sock


def waits_on_its_client(server: MockServer) -> bool:
    """Whether a connection of ``server`` waits on its client (as its cap sees them), waiting
    up to NET seconds for one to."""
    deadline = time.monotonic() + NET
    while time.monotonic() < deadline:
        handlers = list(server._runner.server._connections)  # the mock's _Server
        if any(handler.stalled() for handler in handlers):
            return True
        time.sleep(0.05)
    return False


def read_until_closed(sock: socket.socket) -> bytes:
    """What ``sock`` still receives until the server closes (or resets) it."""
    try:
        return read_all(sock)
    except ConnectionResetError:
        return b""


def stream_being_read(server: MockServer) -> socket.socket:
    """A connection with a stream being answered: its first event read, the next NET * 3 s
    away (a stall fault)."""
    sock = connect(server)
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'
    sock.sendall(_with_body(b"X-Chatcompat-Fault: stall-after=1;stall=%d\r\n" % (NET * 3), body))
    head = b""
    while b"data: " not in head or not head.endswith(b"\r\n"):  # its first event's chunk
        head += sock.recv(1)
    return sock


def test_a_client_that_reads_nothing_of_its_answer_is_closed_after_the_write_timeout(
    start_mock,
):
    server = start_mock(limits=ConnectionLimits(write_timeout=0.5))
    with captured_logs("mockserver") as records, not_reading(server) as sock:
        deadline = time.monotonic() + NET
        while not any("read nothing" in r.getMessage() for r in records):
            assert time.monotonic() < deadline, "no write timeout within the safety net"
            time.sleep(0.1)
        raw = read_until_closed(sock)  # what the buffers held, then the close
    assert raw.count(b"data: [DONE]") < 3  # the answers were stopped, not finished
    assert not [r.getMessage() for r in records if r.levelno >= logging.ERROR]


def test_a_client_not_reading_is_shed_before_an_answer_being_read(start_mock):
    limits = ConnectionLimits(max_connections=2, write_timeout=NET * 10)
    server = start_mock(limits=limits)
    with stream_being_read(server) as streaming:
        with not_reading(server) as idle_reader:
            assert waits_on_its_client(server)  # its writes paused: it waits on its client
            assert answer(exchange(server, b"GET /health HTTP/1.0\r\n\r\n"))[0] == 200
            assert read_until_closed(idle_reader).count(b"data: [DONE]") < 3  # shed: cut
        streaming.settimeout(0.5)
        with pytest.raises(TimeoutError):  # still open, its answer still on the way
            streaming.recv(1)


def test_when_every_connection_is_being_answered_the_oldest_is_shed_not_the_new_one(
    start_mock,
):
    server = start_mock(limits=ConnectionLimits(max_connections=2), ttft=NET * 3)
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'
    streams = [connect(server) for _ in range(2)]
    try:
        for sock in streams:
            sock.sendall(_with_body(b"", body))
            head = b""
            while b"\r\n\r\n" not in head:  # its headers: it is being answered
                head += sock.recv(1)
        assert answer(exchange(server, b"GET /health HTTP/1.0\r\n\r\n"))[0] == 200
        assert b"[DONE]" not in read_all(streams[0])  # the oldest was cut
    finally:
        for sock in streams:
            sock.close()


def test_connections_shed_past_the_cap_leave_no_traceback(start_mock):
    import gc

    server = start_mock(limits=ConnectionLimits(max_connections=1))
    with captured_logs("mockserver", "asyncio", "aiohttp") as records:
        for _ in range(20):  # each one sheds the one before, being answered or not
            with stream_being_read(server):
                assert answer(exchange(server, b"GET /health HTTP/1.0\r\n\r\n"))[0] == 200
        gc.collect()  # a task whose exception nobody retrieved is logged when collected
        assert answer(exchange(server, b"GET /health HTTP/1.0\r\n\r\n"))[0] == 200
        gc.collect()
    assert not [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert not any(r.exc_info for r in records)
    shed = [r for r in records if "the cap" in r.getMessage()]
    assert 1 <= len(shed) <= 2  # counted in the throttled line


# --- pipelining: a malformed request after a valid one --------------------------------------

VALID = _with_body(b"", CHAT)
MALFORMED_AFTER_VALID = {
    "content-encoding-br": (VALID + _with_body(b"Content-Encoding: br\r\n", CHAT), 415),
    "bad-chunk-size": (VALID + POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    "ten-thousand-headers": (
        VALID
        + b"GET /health HTTP/1.1\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(10_000))
        + b"\r\n",
        431,
    ),
    "garbage": (VALID + b"\x00\x01garbage\r\n\r\n", 400),
    "bad-method-after-three": (VALID * 3 + b"G\x00T / HTTP/1.1\r\n\r\n", 400),
}


def answers(raw: bytes) -> list[tuple[int, bytes]]:
    """Every answer in ``raw`` (each with a Content-Length): status and body, in order."""
    found = []
    while raw:
        status, headers, body = answer(raw)
        found.append((status, body))
        raw = raw.partition(b"\r\n\r\n")[2][int(headers["content-length"]) :]
    return found


@pytest.mark.parametrize(
    ("data", "status"), list(MALFORMED_AFTER_VALID.values()), ids=list(MALFORMED_AFTER_VALID)
)
def test_valid_requests_are_answered_before_a_malformed_one_pipelined_after_them(
    mock, data, status
):
    *valid, (last_status, last_body) = answers(exchange(mock, data))  # one write; then closed
    assert len(valid) == data.count(VALID)
    for got_status, body in valid:
        assert (got_status, json.loads(body)["object"]) == (200, "chat.completion")
    assert last_status == status
    assert set(json.loads(last_body)["error"]) == {"message", "type", "param", "code"}


# --- requests that name no path; Expect --------------------------------------------------------

NO_PATH = {
    "options-asterisk": b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
    "connect-authority": b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: t\r\n\r\n",
    "connect-a-path": b"CONNECT /v1/models HTTP/1.1\r\nHost: t\r\n\r\n",
}


@pytest.mark.parametrize("data", list(NO_PATH.values()), ids=list(NO_PATH))
def test_connect_and_options_asterisk_get_405_in_the_envelope(mock, data):
    with connect(mock) as sock:
        sock.sendall(data)
        status, body = one_response(sock)
    assert status == 405
    assert "GET, HEAD, POST" in json.loads(body)["error"]["message"]


def test_the_405_of_a_request_naming_no_path_says_allow(mock):
    status, headers, _ = answer(
        exchange(mock, NO_PATH["options-asterisk"][:-2] + b"Connection: close\r\n\r\n")
    )
    assert (status, headers["allow"]) == (405, "GET, HEAD, POST")


def test_an_unknown_expectation_gets_417_in_the_envelope(mock):
    raw = exchange(mock, _with_body(b"Expect: 200-ok\r\n", CHAT))
    assert envelope(raw) == (417, "expectation_failed", "application/json")


def _expecting(length: int, key: bytes | None) -> bytes:
    auth = b"Authorization: Bearer " + key + b"\r\n" if key is not None else b""
    return POST + auth + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % length


EXPECT_REFUSED = {
    "body-too-large": (None, 50_000_000, None, 413),
    "no-key": ("sk-right", 100, None, 401),
    "wrong-key": ("sk-right", 100, b"sk-wrong", 401),
}


@pytest.mark.parametrize(
    ("api_key", "length", "sent_key", "status"),
    list(EXPECT_REFUSED.values()),
    ids=list(EXPECT_REFUSED),
)
def test_expect_100_continue_is_refused_before_the_body_when_it_would_be(
    start_mock, api_key, length, sent_key, status
):
    server = start_mock(api_key=api_key)
    with connect(server) as sock:
        sock.sendall(_expecting(length, sent_key))  # headers only: the body waits for a 100
        raw = read_all(sock)  # the answer, then the close (no body is waited for)
    assert b"100 Continue" not in raw
    assert envelope(raw)[0] == status


def test_expect_100_continue_with_the_key_continues(start_mock):
    server = start_mock(api_key="sk-right")
    with connect(server) as sock:
        sock.sendall(_expecting(len(CHAT), b"sk-right"))
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(CHAT)
        assert one_response(sock)[0] == 200


# --- a connection that sends nothing -------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(start_mock):
    server = start_mock(limits=ConnectionLimits(header_timeout=0.5, idle_timeout=NET * 10))
    started = time.monotonic()
    with connect(server) as sock:
        assert read_all(sock) == b""  # closed, and nothing said: there was no request
    assert time.monotonic() - started < NET * 10  # not the idle timeout
