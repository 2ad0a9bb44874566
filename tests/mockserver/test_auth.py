"""The mock's API key: compared in constant time (on bytes, any characters), and given by an
environment variable so that it need not sit in the process's command line."""

from __future__ import annotations

import argparse
import hmac
import json
import socket

import pytest

from mockserver import _api_key as api_key_module
from mockserver import cli

KEY = "sk-clé-ü-0123"  # not ASCII: compare_digest on str would raise TypeError


def get_models(server, authorization: bytes) -> tuple[int, str | None]:
    """GET /v1/models with these raw Authorization bytes: the status and the error code."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"GET /v1/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"Authorization: " + authorization + b"\r\n\r\n"
        )
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, None if status == 200 else json.loads(body)["error"]["code"]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (f"Bearer {KEY}".encode(), 200),
        (f"bearer   {KEY}  ".encode(), 200),
        (f"Bearer {KEY}".encode("latin-1"), 401),  # the same characters, other bytes
        (b"Bearer sk-cl\xff", 401),  # not UTF-8
        (b"Bearer " + KEY.encode()[:-1], 401),
        (b"Bearer " + KEY.encode() + b"x", 401),
        (b"Basic " + KEY.encode(), 401),
    ],
    ids=[
        "exact",
        "scheme-case-and-spaces",
        "latin-1",
        "invalid-utf-8",
        "prefix",
        "longer",
        "basic",
    ],
)
def test_a_non_ascii_key_is_compared_on_its_bytes(start_mock, authorization, status):
    server = start_mock(api_key=KEY)
    got, code = get_models(server, authorization)
    assert got == status
    assert code in (None, "invalid_api_key")


def test_the_key_is_compared_in_constant_time(start_mock, monkeypatch):
    compared, real = [], hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api_key_module.hmac, "compare_digest", spy)
    server = start_mock(api_key=KEY)
    assert get_models(server, b"Bearer wrong")[0] == 401
    assert compared == [(b"wrong", KEY.encode())]


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_key_comes_from_the_environment_unless_given(monkeypatch):
    monkeypatch.setenv(cli.API_KEY_VARIABLE, KEY)
    assert parsed().api_key == KEY
    assert parsed("--api-key", "other").api_key == "other"
    monkeypatch.setenv(cli.API_KEY_VARIABLE, "")
    assert parsed().api_key is None  # empty: no key
    monkeypatch.delenv(cli.API_KEY_VARIABLE)
    assert parsed().api_key is None
    assert cli.API_KEY_VARIABLE == "CHATCOMPAT_MOCK_API_KEY"
