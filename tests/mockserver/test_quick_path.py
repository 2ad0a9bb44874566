"""The quick path (mockserver._quick): a repeated chat completion answered by the connection
layer from the answer cache. Its answers must be the usual path's, byte for byte but for the
ids and the time; every request it must not answer goes the usual way, and so does every
request to a server where something could change the answer."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from urllib.parse import quote

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver import FLAVOURS, ConnectionLimits, MockServer
from mockserver._app import SCRIPTED_CASSETTES, SCRIPTED_DEFECTS, SCRIPTED_FAULTS, STATE
from mockserver._cassettes import builtin_cassettes
from mockserver._protocol import _Connection
from mockserver._quick import QUICK_PATH
from mockserver._replies import Reply

from ..conftest import cli_mock

NET = 30.0  # seconds: a safety net for an answer that should come at once
EXAMPLES = int(os.environ.get("QUICK_PATH_EXAMPLES", "60"))  # heads the property test draws
PATH = "/v1/chat/completions"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Quick?"}], "max_tokens": 5}
STREAM = {**CHAT, "stream": True}
USAGE = {**STREAM, "n": 2, "stream_options": {"include_usage": True}}

Start = Callable[..., MockServer]


def request(body: dict | bytes, *headers: str, line: str = f"POST {PATH} HTTP/1.1") -> bytes:
    """The bytes of one request: ``line``, a Host, the JSON Content-Type unless ``headers``
    give one, ``headers``, and a Content-Length for ``body``."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    named = {h.split(":")[0].lower() for h in headers}
    head = [line, "Host: 127.0.0.1", "User-Agent: quick-test/1"]
    if "content-type" not in named:
        head.append("Content-Type: application/json")
    if "content-length" not in named and "transfer-encoding" not in named:
        head.append(f"Content-Length: {len(data)}")
    return ("\r\n".join([*head, *headers]) + "\r\n\r\n").encode() + data


class Reader:
    """The answers that come on one connection, one whole answer at a time (head and body as
    they came; an interim 100 Continue is passed over)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.data = sock, b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"closed before a whole answer; got {self.data!r}"
        self.data += chunk

    def answer(self) -> bytes:
        while True:
            while b"\r\n\r\n" not in self.data:
                self._more()
            head, _, rest = self.data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 100 "):
                break
            self.data = rest
        found = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
        assert found is not None, head
        size = len(head) + 4 + int(found.group(1))
        while len(self.data) < size:
            self._more()
        answer, self.data = self.data[:size], self.data[size:]
        return answer


@contextlib.contextmanager
def warm(server: MockServer, data: bytes) -> Iterator[tuple[socket.socket, Reader]]:
    """A connection on which ``data`` was answered once: its body cached, aiohttp's request
    loop waiting for the next request."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=NET) as sock:
        reader = Reader(sock)
        sock.sendall(data)
        reader.answer()
        yield sock, reader


def exchange(server: MockServer, *requests: bytes, pause: float = 0.0) -> list[bytes]:
    """Send each request on one connection, reading its answer before the next."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=NET) as sock:
        reader, answers = Reader(sock), []
        for data in requests:
            sock.sendall(data)
            answers.append(reader.answer())
            time.sleep(pause)
        return answers


def masked(answer: bytes) -> bytes:
    """``answer`` without what differs from one request to the next: ids, times, Date."""
    answer = re.sub(rb"req_[0-9a-f]{32}", b"req_ID", answer)
    answer = re.sub(rb"chatcmpl-[0-9a-f]{32}", b"chatcmpl-ID", answer)
    answer = re.sub(rb'("created": ?)\d+', rb"\1T", answer)
    return re.sub(rb"\r\nDate: [^\r]+", b"\r\nDate: D", answer)


def answered(server: MockServer) -> int:
    """How many requests ``server``'s quick path answered."""
    assert server.app is not None
    return server.app[QUICK_PATH].answered


@pytest.mark.parametrize(
    "body", [CHAT, {**CHAT, "n": 2}, STREAM, USAGE], ids=["json", "n2", "stream", "usage"]
)
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_a_repeated_request_gets_the_usual_paths_bytes(start_mock: Start, flavour: str, body: dict):
    quick = start_mock(flavour=flavour)
    usual = start_mock(flavour=flavour, quick_path=False)
    assert usual.app is not None and QUICK_PATH not in usual.app
    data = request(body)
    first, second, third = exchange(quick, data, data, data)
    expected = exchange(usual, data, data)
    assert answered(quick) == 2  # the first filled the answer cache
    assert masked(second) == masked(expected[1]) == masked(first) == masked(third)
    assert second != third  # fresh ids


def test_a_schema_level_server_answers_its_repeated_requests_quickly(start_mock: Start):
    quick = start_mock(validation="schema")
    usual = start_mock(validation="schema", quick_path=False)
    data = request({**CHAT, "max_tokens": 0, "stream_options": {"include_usage": True}})
    assert [masked(a) for a in exchange(quick, data, data)] == [
        masked(a) for a in exchange(usual, data, data)
    ]
    assert answered(quick) == 1


def test_the_cache_is_left_for_the_usual_path_when_the_level_changes(start_mock: Start):
    server = start_mock()
    data = request({**CHAT, "max_tokens": 0})  # refused by strict, answered by schema
    assert server.app is not None
    server.app[STATE].set_validation("schema")
    assert b" 200 OK" in exchange(server, data, data)[1]
    server.app[STATE].set_validation("strict")
    assert b" 400 Bad Request" in exchange(server, data)[0]
    assert answered(server) == 1


def test_connection_keep_alive_is_http_1_1s_default_and_quick(start_mock: Start):
    """httpx (the official clients) sends it with every request."""
    quick, usual = start_mock(), start_mock(quick_path=False)
    data = request(CHAT, "Connection: Keep-Alive")
    got, expected = exchange(quick, data, data), exchange(usual, data, data)
    assert answered(quick) == 1
    assert masked(got[1]) == masked(expected[1])


@pytest.mark.parametrize(
    ("authorization", "quick"),
    [
        ("Bearer sk-test", True),
        ("bearer   sk-test  ", True),  # the scheme in any case, the token stripped
        ("Bearer sk-other", False),
        ("Basic sk-test", False),
        ("Bearer", False),
        (None, False),
    ],
)
def test_with_an_api_key_only_the_right_key_is_quick(
    start_mock: Start, authorization: str | None, quick: bool
):
    servers = start_mock(api_key="sk-test"), start_mock(api_key="sk-test", quick_path=False)
    first = request(CHAT, "Authorization: Bearer sk-test")
    data = request(CHAT, *([] if authorization is None else [f"Authorization: {authorization}"]))
    got, expected = (exchange(server, first, data)[1] for server in servers)
    assert answered(servers[0]) == int(quick)
    assert masked(got) == masked(expected)
    assert got.startswith(b"HTTP/1.1 200 " if quick else b"HTTP/1.1 401 ")


def gzipped(body: dict) -> bytes:
    return gzip.compress(json.dumps(body).encode())


def chunked(body: dict) -> bytes:
    data = json.dumps(body).encode()
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


# requests the usual path answers, each after the same body answered once (so the cache has it)
LEFT_ALONE = {
    "connection-close": request(CHAT, "Connection: close"),
    "http-1.0": request(CHAT, line=f"POST {PATH} HTTP/1.0"),
    "query-string": request(CHAT, line=f"POST {PATH}?x=1 HTTP/1.1"),
    "absolute-form": request(CHAT, line=f"POST http://127.0.0.1{PATH} HTTP/1.1"),
    "lowercase-method": request(CHAT, line=f"post {PATH} HTTP/1.1"),
    "chunked": request(chunked(CHAT), "Transfer-Encoding: chunked"),
    "gzip": request(gzipped(CHAT), "Content-Encoding: gzip"),
    "expect": request(CHAT, "Expect: 100-continue"),
    "upgrade": request(CHAT, "Upgrade: websocket"),
    "fault-header": request(CHAT, "X-Chatcompat-Fault: status=503"),
    "fault-key-header": request(CHAT, "X-Chatcompat-Fault-Key: k"),
    "text-plain": request(CHAT, "Content-Type: text/plain"),
    "two-content-types": request(CHAT, "Content-Type: application/json", "Content-Type: a/json"),
    "two-content-lengths": request(
        CHAT, f"Content-Length: {len(json.dumps(CHAT))}", f"Content-Length: {len(json.dumps(CHAT))}"
    ),
    "utf8-value": request(CHAT, "X-Name: caf\u00e9"),
    "obs-fold": request(CHAT, "X-Long: one", " two"),
    "space-before-colon": request(CHAT, "X-Bad : value"),
    "nul-in-value": request(CHAT, "X-Bad: a\x00b"),
    # found by a red-team pass: heads aiohttp's parser refuses or reads otherwise
    "no-host": request(CHAT).replace(b"Host: 127.0.0.1\r\n", b""),
    "sec-websocket-key1": request(CHAT, "Sec-WebSocket-Key1: 1"),
    "proxy-connection-close": request(CHAT, "Proxy-Connection: close"),
    "te": request(CHAT, "TE: trailers"),
    "5000-digit-length": request(CHAT, "Content-Length: " + "9" * 5000),
}


@pytest.mark.parametrize("name", sorted(LEFT_ALONE))
def test_requests_the_quick_path_leaves_to_aiohttp(start_mock: Start, name: str):
    quick, usual = start_mock(), start_mock(quick_path=False)
    first, data = request(CHAT), LEFT_ALONE[name]

    got, expected = exchange(quick, first, data), exchange(usual, first, data)
    assert answered(quick) == 0, name
    assert masked(got[1]) == masked(expected[1]), name


def test_a_content_length_with_5000_leading_zeros_is_read_as_its_value(start_mock: Start):
    """int() refuses strings of over 4,300 digits: the connection layer must not raise."""
    quick, usual = start_mock(), start_mock(quick_path=False)
    data = request(CHAT, f"Content-Length: {'0' * 5000}{len(json.dumps(CHAT))}")
    got, expected = exchange(quick, data, data), exchange(usual, data, data)
    assert [masked(a) for a in got] == [masked(a) for a in expected]
    assert got[1].startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("prefix", ["/v?1", "/v#1", "/v 1", "/v\u00e9", "/v%31"])
def test_a_prefix_the_router_decodes_keeps_the_quick_path_shut(start_mock: Start, prefix: str):
    server = start_mock(prefix=prefix)
    raw = request(CHAT, line=f"POST {prefix}/chat/completions HTTP/1.1")
    quoted = request(CHAT, line=f"POST {quote(prefix)}/chat/completions HTTP/1.1")
    exchange(server, quoted, quoted)
    _exchange_or_close(server, quoted, raw)  # a 400 and the end of the connection, or a 200
    assert answered(server) == 0


def test_pipelined_requests_are_parsed_by_aiohttp_and_answered_in_order(start_mock: Start):
    server = start_mock()
    data = request(CHAT)
    exchange(server, data)  # cached
    with socket.create_connection(("127.0.0.1", server.port), timeout=NET) as sock:
        sock.sendall(data + request(STREAM) + data)
        reader = Reader(sock)
        answers = [reader.answer() for _ in range(3)]
    assert answered(server) == 0
    assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 3
    assert [b"text/event-stream" in a for a in answers] == [False, True, False]


@pytest.mark.parametrize("cut", [0, 4, 30], ids=["head", "head-and-4", "head-and-30"])
def test_a_head_and_its_body_in_two_writes_are_quick(start_mock: Start, cut: int):
    """httpx (under the official clients) writes a request's head and body apart."""
    server = start_mock()
    data = request(CHAT)
    split = data.index(b"\r\n\r\n") + 4 + cut
    first = exchange(server, data)[0]  # cached now
    with warm(server, data) as (sock, reader):
        sock.sendall(data[:split])
        time.sleep(0.005)
        sock.sendall(data[split:])
        second = reader.answer()
    assert answered(server) == 2  # the warm one, then the split one
    assert masked(first) == masked(second)


def test_a_held_head_whose_body_is_late_goes_the_usual_way(start_mock: Start):
    server = start_mock()
    data = request(CHAT)
    head, body = data.split(b"\r\n\r\n")
    with warm(server, data) as (sock, reader):  # cached now
        sock.sendall(head + b"\r\n\r\n" + body[:3])
        time.sleep(0.3)  # past the hold: the parser has it, waiting for the body
        sock.sendall(body[3:])
        assert b"200 OK" in reader.answer()
        assert answered(server) == 0
        sock.sendall(data)  # the parser ended that request: the next one is quick
        assert b"200 OK" in reader.answer()
        assert answered(server) == 1


def test_a_held_head_then_a_pipelined_request_is_parsed_whole(start_mock: Start):
    server = start_mock()
    data = request(CHAT)
    split = data.index(b"\r\n\r\n") + 4
    with warm(server, data) as (sock, reader):
        sock.sendall(data[:split])
        time.sleep(0.005)
        sock.sendall(data[split:] + request(STREAM))  # the body, then another request
        answers = [reader.answer(), reader.answer()]
    assert answered(server) == 0
    assert [b"text/event-stream" in a for a in answers] == [False, True]


def test_a_connection_closed_while_a_head_is_held_leaves_nothing_behind(start_mock: Start):
    server = start_mock()
    data = request(CHAT)
    exchange(server, data)
    with socket.create_connection(("127.0.0.1", server.port), timeout=NET) as sock:
        sock.sendall(data[: data.index(b"\r\n\r\n") + 4])
    time.sleep(0.2)  # past the hold: its timer must not feed a closed connection
    assert b"200 OK" in exchange(server, data)[0]
    assert answered(server) == 1


def fault(server: MockServer) -> None:
    assert server.app is not None
    server.app[SCRIPTED_FAULTS].add("status=503")


def defect(server: MockServer) -> None:
    assert server.app is not None
    server.app[SCRIPTED_DEFECTS].add("missing-done")


def reply(server: MockServer) -> None:
    assert server.app is not None
    server.app[STATE].replies.add(Reply(content="scripted"))


def cassette(server: MockServer) -> None:
    assert server.app is not None
    server.app[SCRIPTED_CASSETTES].add(builtin_cassettes()[:1])  # another body's


# servers (configured, or scripted once the body is cached) whose answers the quick path
# cannot give: (config, what to script, the body sent twice, what the second answer holds)
CLOSED = {
    "defect": ({"defects": ("missing-done",)}, None, STREAM, b"HTTP/1.1 200 "),
    "fault": ({"faults": ("status=503;fail-first=9",)}, None, CHAT, b"HTTP/1.1 503 "),
    "timing": ({"ttft": 0.01}, None, CHAT, b"HTTP/1.1 200 "),
    "control": ({"control": True}, None, CHAT, b"HTTP/1.1 200 "),
    "scripted-fault": ({}, fault, CHAT, b"HTTP/1.1 503 "),
    "scripted-defect": ({}, defect, STREAM, b"HTTP/1.1 200 "),
    "scripted-reply": ({}, reply, CHAT, b'"content": "scripted"'),
    "scripted-cassette": ({}, cassette, CHAT, b"HTTP/1.1 200 "),
}


@pytest.mark.parametrize("name", sorted(CLOSED))
def test_a_server_that_could_change_the_answer_has_the_quick_path_closed(
    start_mock: Start, name: str
):
    config, script, body, holds = CLOSED[name]
    server = start_mock(**config)
    data = request(body)
    first = exchange(server, data)[0]
    if script is not None:
        script(server)
    second = exchange(server, data)[0]
    assert answered(server) == 0
    assert holds in second, second[:300]
    if name in ("defect", "scripted-defect"):  # missing-done: the stream ends without [DONE]
        assert (b"[DONE]" in first, b"[DONE]" in second) == (name != "defect", False)


def test_an_idle_connection_still_closes_after_quick_answers(start_mock: Start):
    limits = ConnectionLimits(idle_timeout=0.6)
    server = start_mock(limits=limits)
    data = request(CHAT)
    with socket.create_connection(("127.0.0.1", server.port), timeout=NET) as sock:
        reader = Reader(sock)
        for _ in range(6):  # 1.8 s of quick answers, each within the idle timeout of the last
            sock.sendall(data)
            assert b"200 OK" in reader.answer()
            time.sleep(0.3)
        assert answered(server) == 5
        started = time.monotonic()
        assert sock.recv(10) == b""  # then idle: closed
        assert time.monotonic() - started < NET


def test_the_official_client_gets_quick_answers(start_mock: Start):
    server = start_mock()
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{server.port}/v1", api_key="k", max_retries=0
    )
    answers = [
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Quick?"}])
        for _ in range(3)
    ]
    assert len({a.id for a in answers}) == 3
    assert len({a.choices[0].message.content for a in answers}) == 1
    streams = [
        "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Quick?"}], stream=True
            )
            if c.choices
        )
        for _ in range(3)
    ]
    assert streams[0] == streams[1] == streams[2] == answers[0].choices[0].message.content
    assert answered(server) >= 1  # httpx may send head and body apart: those go the usual way


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_cli_logs_a_quick_answer_as_the_usual_one(tmp_path: Path):
    log = tmp_path / "mock.log"
    with cli_mock(log) as base_url:
        port = int(base_url.rsplit(":", 1)[1].split("/")[0])
        data = request(STREAM)
        with socket.create_connection(("127.0.0.1", port), timeout=NET) as sock:
            reader = Reader(sock)
            for _ in range(2):
                sock.sendall(data)
                assert b"200 OK" in reader.answer()
    lines = [line for line in log.read_text().splitlines() if "aiohttp.access" in line]
    pattern = re.compile(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} aiohttp\.access 127\.0\.0\.1 "
        r'"POST /v1/chat/completions HTTP/1\.1" 200 (\d+) \d+\.\d{3}s "quick-test/1"'
    )
    matched = [pattern.fullmatch(line) for line in lines]
    assert len(lines) == 2 and all(matched), lines
    assert matched[0].group(1) == matched[1].group(1)  # type: ignore[union-attr]


def test_http_client_answers_match(start_mock: Start):
    """http.client sends the head and the body in one write when it can: quick from the second."""
    server = start_mock()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=NET)
    body = json.dumps(CHAT)
    statuses = []
    for _ in range(3):
        connection.request("POST", PATH, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        statuses.append((response.status, response.getheader("Content-Type")))
        response.read()
    connection.close()
    assert statuses == [(200, "application/json")] * 3


# header lines as clients and fuzzers send them: known names with odd values, odd names
_NAMES = st.one_of(
    st.sampled_from(
        ["Connection", "Content-Type", "User-Agent", "Expect", "Accept", "Authorization",
         "X-Chatcompat-Fault", "Upgrade", "Content-Encoding", "X-Extra", "X Bad", "X-Bad ",
         "Host", "Proxy-Connection", "Sec-WebSocket-Key1", "TE", "Keep-Alive", "Trailer"]
    ),
    st.text(st.characters(min_codepoint=1, max_codepoint=0xFF), min_size=1, max_size=8),
)  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from(
        ["keep-alive", "close", "application/json", "text/plain", "100-continue", "gzip",
         "websocket", "defect=missing-done", "status=429", "", " padded ", "a\tb"]
    ),
    st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=12),
)  # fmt: skip


def test_any_head_gets_the_same_answer_on_both_paths(start_mock: Start):
    """Whatever the head holds, a server with the quick path answers as one without it."""
    quick, usual = start_mock(), start_mock(quick_path=False)

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(
        lines=st.lists(st.tuples(_NAMES, _VALUES), max_size=4),
        body=st.sampled_from([CHAT, STREAM, USAGE]),
        host=st.booleans(),
    )
    def check(lines: list[tuple[str, str]], body: dict, host: bool) -> None:
        data = request(body, *(f"{name}: {value}" for name, value in lines))
        if not host:
            data = data.replace(b"Host: 127.0.0.1\r\n", b"", 1)
        got = [_exchange_or_close(server, request(body), data) for server in (quick, usual)]
        assert masked(got[0]) == masked(got[1]), data

    check()
    assert answered(quick) > 0  # the heads without an odd line


def _exchange_or_close(server: MockServer, first: bytes, data: bytes) -> bytes:
    """The answer to ``data`` after ``first`` on one connection, or what came before it closed."""
    with warm(server, first) as (sock, reader):
        sock.sendall(data)
        try:
            return reader.answer()
        except AssertionError:  # closed without a whole answer
            return reader.data


def _in_server(server: MockServer, act: Callable[[], object]) -> object:
    """``act()``'s result, run on ``server``'s event loop (its connections live there)."""
    assert server._loop is not None

    async def run() -> object:
        return act()

    return asyncio.run_coroutine_threadsafe(run(), server._loop).result(NET)


def test_a_held_head_is_not_closed_by_the_idle_timeout_nor_lost_at_shutdown(start_mock: Start):
    server = start_mock()
    data = request(CHAT)
    split = data.index(b"\r\n\r\n") + 4
    with warm(server, data) as (sock, reader):  # cached now
        (connection,) = connections(server)
        loop = server._loop
        assert loop is not None

        def head_at_the_idle_deadline() -> bool:
            connection._next_keepalive_close_time = loop.time()  # the idle timeout is due
            connection.data_received(data[:split])  # held for its body
            connection._process_keepalive()  # the idle timer fires now
            return connection.transport is not None and bool(connection._held)

        assert _in_server(server, head_at_the_idle_deadline)
        sock.sendall(data[split:])
        assert b"200 OK" in reader.answer()
        assert answered(server) == 1

        def head_then_shutdown() -> bool:
            connection.data_received(data[:split])
            connection.close()  # what the server's shutdown does first
            return not connection._held and bool(connection._messages)

        # handed to aiohttp as a request in progress, as the usual path has it by then (aiohttp
        # reads nothing more once closing: shutdown gives it its timeout, then cancels it)
        assert _in_server(server, head_then_shutdown)


def connections(server: MockServer) -> list[_Connection]:
    assert server._runner is not None and server._runner.server is not None
    return [c for c in server._runner.server._open if isinstance(c, _Connection)]  # type: ignore[attr-defined]


def test_a_request_read_while_the_one_before_starts_waits_its_turn(start_mock: Start):
    """aiohttp's request loop takes a request off its queue and starts its handler a turn of
    the event loop later (Python < 3.12): a cached body read in between must not overtake it."""
    server = start_mock()
    before = request({**CHAT, "model": "first"}, "X-Chatcompat-Fault-Key: k")  # the usual way
    cached = request({**CHAT, "model": "second"})
    exchange(server, cached)
    with warm(server, request(CHAT)) as (_, reader):  # the request loop waits now
        (connection,) = connections(server)
        loop = server._loop
        assert loop is not None
        # the first request queued; the loop's next turn pops it, then the cached one is read
        _in_server(server, lambda: (connection.data_received(before),
                                    loop.call_soon(connection.data_received, cached)))  # fmt: skip
        answers = [reader.answer(), reader.answer()]
    assert [b'"model": "first"' in a for a in answers] == [True, False]
    assert b'"model": "second"' in answers[1]
    assert answered(server) == 0


def test_nothing_is_answered_after_a_connection_close_answer(start_mock: Start):
    server = start_mock()
    cached = request(CHAT)
    exchange(server, cached)
    with warm(server, cached) as (sock, reader):
        (connection,) = connections(server)
        loop = server._loop
        assert loop is not None
        closing = request(CHAT, "Connection: close")
        _in_server(server, lambda: (connection.data_received(closing),
                                    loop.call_soon(connection.data_received, cached)))  # fmt: skip
        assert b"Connection: close" in reader.answer()
        assert sock.recv(65536) == b"" and reader.data == b""  # closed, nothing after it
    assert answered(server) == 1


def test_a_held_body_keeps_its_deadlines(start_mock: Start):
    """A body trickling in does not stretch the hold; once released, the body's deadline counts
    from the head's arrival, not from the release."""
    server = start_mock(limits=ConnectionLimits(body_timeout=30.0))
    data = request(CHAT)
    split = data.index(b"\r\n\r\n") + 4
    with warm(server, data) as (sock, reader):  # cached, and the request loop waits
        (connection,) = connections(server)

        def trickle() -> tuple[bool, bool, float]:
            connection.data_received(data[:split])
            timer, held_at = connection._hold_timer, connection._held_at
            connection.data_received(data[split : split + 2])  # more of the body, not all
            same = connection._hold_timer is timer and bool(connection._held)
            connection._release()  # the hold is over: the parser has it
            body_timer = connection._body_timer
            assert body_timer is not None
            return same, not connection._held, body_timer.when() - held_at

        same, released, deadline = _in_server(server, trickle)  # type: ignore[misc]
        assert same and released
        assert deadline == pytest.approx(30.0)
        sock.sendall(data[split + 2 :])
        assert b"200 OK" in reader.answer()
    assert answered(server) == 0


def test_a_client_that_half_closes_gets_a_quick_answer(start_mock: Start):
    """The one difference the quick path keeps (see mockserver._quick): aiohttp closes a
    connection at the end of its input without answering; the quick path has answered."""
    server = start_mock()
    data = request(CHAT)
    exchange(server, data)
    with socket.create_connection(("127.0.0.1", server.port), timeout=NET) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        assert Reader(sock).answer().startswith(b"HTTP/1.1 200 ")
    assert answered(server) == 1


def test_a_long_run_of_blanks_in_a_value_is_read_as_aiohttp_reads_it(start_mock: Start):
    """The head's values are stripped after the match (a lazy match before trailing blanks had
    taken time quadratic in the run: ~36 ms of CPU for an 8 KB head)."""
    quick, usual = start_mock(), start_mock(quick_path=False)
    data = request(CHAT, "X-Blank: a" + " " * 8000 + "b", "User-Agent-X: " + "\t " * 10)
    got, expected = exchange(quick, data, data), exchange(usual, data, data)
    assert [masked(a) for a in got] == [masked(a) for a in expected]


# found by a second red-team pass: an answer that the transport cannot take below its high-water
# mark leaves aiohttp's handler waiting for the client to read it (the request in progress:
# deadlines, shutdown and the access log follow that); the quick path leaves it to aiohttp
BIG = {**STREAM, "n": 8, "max_tokens": 200}  # ~400 KB of events


def test_an_answer_past_the_buffers_high_water_mark_goes_the_usual_way(start_mock: Start):
    quick, usual = start_mock(), start_mock(quick_path=False)
    data = request(BIG)
    got, expected = exchange(quick, data, data), exchange(usual, data, data)
    assert len(got[1]) > 64 * 1024
    assert answered(quick) == 0
    assert masked(got[1]) == masked(expected[1])


def test_a_small_answer_behind_unread_bytes_goes_the_usual_way(start_mock: Start):
    server = start_mock()
    data = request(CHAT)
    with warm(server, data) as (sock, reader):
        (connection,) = connections(server)

        quick = connection._quick
        assert quick is not None
        # 100 bytes of room left in the buffer: too few for the answer
        assert _in_server(server, lambda: quick.read(data, 100)) is None
        sock.sendall(data)
        assert b"200 OK" in reader.answer()
        assert answered(server) == 1  # with the buffer empty, quick


def test_a_head_announcing_a_body_past_the_limit_is_not_held(start_mock: Start):
    """Its 413 comes at once, not after the hold."""
    quick, usual = (
        start_mock(max_body_bytes=1000),
        start_mock(max_body_bytes=1000, quick_path=False),
    )
    data = request(b"x" * 2000, "Content-Length: 500000")
    for server in (quick, usual):
        with socket.create_connection(("127.0.0.1", server.port), timeout=NET) as sock:
            sock.sendall(request(CHAT))
            Reader(sock).answer()
            (connection,) = connections(server)
            held = _in_server(server, partial(_feed, connection, data))
            assert held == b""
            assert Reader(sock).answer().startswith(b"HTTP/1.1 413 ")


def _feed(connection: _Connection, data: bytes) -> bytes:
    """What ``connection`` holds once ``data`` is read."""
    connection.data_received(data)
    return connection._held
