"""The body timeout's timer exists only while a body is on its way: a body that comes with its
headers costs none, and a body that comes later ends its timer once it is whole (a timer per
request left to fire 60 s later had filled the loop's heap; issue 14)."""

from __future__ import annotations

import json
import socket
import time

from mockserver import MockServer
from mockserver._protocol import _Connection

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}).encode()
HEAD = (
    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(BODY)}\r\n\r\n"
).encode()


def connections(server: MockServer) -> list[_Connection]:
    assert server._runner is not None and server._runner.server is not None
    return [c for c in server._runner.server._open if isinstance(c, _Connection)]  # type: ignore[attr-defined]


def body_timer_when(server: MockServer) -> bool:
    """Whether the one connection has a body timer (looked at after the server's turn)."""
    time.sleep(0.3)
    (connection,) = connections(server)
    return connection._body_timer is not None


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_a_body_with_its_headers_has_no_timer_and_a_late_one_loses_it(mock):
    with socket.create_connection((mock.host, mock.port), timeout=30) as sock:
        sock.sendall(HEAD + BODY)
        assert read_answer(sock).startswith(b"HTTP/1.1 200")
        assert not body_timer_when(mock)
        sock.sendall(HEAD + BODY[:10])  # the body on its way: bounded by the timer
        assert body_timer_when(mock)
        sock.sendall(BODY[10:])
        assert read_answer(sock).startswith(b"HTTP/1.1 200")
        assert not body_timer_when(mock)
