from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from conformance import Endpoint
from conformance._probe import first_listed_model, probe

from .test_broken_endpoints import RawServer


def found(endpoint):
    findings, context = asyncio.run(probe(endpoint))
    return {f.capability: f.found for f in findings}, findings, context


def test_probe_finds_what_the_template_mock_supports(start_mock):
    server = start_mock(api_key="sk-probe")
    result, findings, context = found(Endpoint(server.base_url, "m", "sk-probe", timeout=10))
    assert result == {
        "tools": True,
        "logprobs": True,
        "n": True,
        "json": True,
        "ext": True,
        "auth": True,
        "seed": False,
        "sampling": False,
    }
    assert all(f.evidence for f in findings)
    assert context is None


def test_probe_of_an_endpoint_that_rejects_everything_finds_nothing():
    async def reject(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "error": {
                    "message": "no",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
            status=400,
        )

    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", reject)
    with RawServer(app) as server:
        result, findings, _ = found(Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=5))
    assert not any(result.values())
    assert "status 400" in next(f.evidence for f in findings if f.capability == "tools")


def test_first_listed_model_is_the_first_id(start_mock):
    server = start_mock(api_key="sk-list", models=("first", "second"))
    endpoint = Endpoint(server.base_url, "", "sk-list", timeout=5)
    assert asyncio.run(first_listed_model(endpoint)) == "first"


@pytest.mark.parametrize(
    ("status", "body", "seen"),
    [
        (
            200,
            b'{"object": "list", "data": []}',
            'lists no model id: {"object": "list", "data": []}',
        ),
        (
            200,
            b'{"data": [{"object": "model"}]}',
            'lists no model id: {"data": [{"object": "model"}]}',
        ),
        (200, b"<html>", "lists no model id: <html>"),
        (500, b"oops", "answered 500: oops"),
    ],
    ids=["empty", "no-id", "not-json", "500"],
)
def test_first_listed_model_says_what_was_seen(status, body, seen):
    async def listing(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("GET", "/v1/models", listing)
    with RawServer(app) as server:
        base = f"http://127.0.0.1:{server.port}/v1"
        with pytest.raises(ValueError) as caught:
            asyncio.run(first_listed_model(Endpoint(base, "", timeout=5)))
    assert str(caught.value) == f"GET {base}/models {seen}"


def test_first_listed_model_without_an_answer():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(ValueError, match=rf"^GET {base}/models got no answer \(\w+"):
        asyncio.run(first_listed_model(Endpoint(base, "", timeout=5)))
