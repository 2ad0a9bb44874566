from __future__ import annotations

import asyncio

from aiohttp import web

from conformance import Endpoint
from conformance._probe import probe

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
