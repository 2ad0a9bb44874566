"""Checks against answers vLLM 0.32.0 gave (data/vllm_answers.json): what vLLM does right passes
or gives no verdict, what it does wrong is named precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from conformance import Endpoint, run

from .test_broken_endpoints import RawServer

ANSWERS = json.loads(Path(__file__).with_name("data").joinpath("vllm_answers.json").read_text())


def _server() -> RawServer:
    """Tool requests get vLLM's answers cut at max_tokens; others its logprobs answer whose
    first tokens are parts of U+03B1 shown as "" with bytes []."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("tools") and body.get("stream"):
            return web.Response(
                body=ANSWERS["required_stream"].encode(), content_type="text/event-stream"
            )
        return web.json_response(ANSWERS["required" if body.get("tools") else "lp"])

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    return RawServer(app)


def _results(ids: list[str], capabilities: set[str]) -> dict:
    with _server() as server:
        endpoint = Endpoint(
            f"http://127.0.0.1:{server.port}/v1",
            "m",
            timeout=10,
            capabilities=frozenset(capabilities),
        )
        return {r.check.id: r for r in run(endpoint, ids).results}


def test_tool_calls_cut_at_max_tokens_give_no_verdict():
    ids = ["tool_nonstream", "tool_stream_cont", "tool_stream_not_dropped"]
    results = _results(ids, {"core", "tools"})
    assert {k: r.status for k, r in results.items()} == dict.fromkeys(ids, "skipped")
    assert all("cut at max_tokens" in r.message for r in results.values())
    assert "tool_choice required and named" in results["tool_nonstream"].message


def test_lp_shape_names_the_tokens_whose_bytes_were_left_out():
    result = _results(["lp_shape"], {"core", "logprobs"})["lp_shape"]
    assert result.status == "failed"
    alpha = "\u03b1"
    assert f"at character 0 the content has '\ufffd{alpha * 2}', the tokens '{alpha * 2}'" in (
        result.message
    )
    assert 'tokens [0, 1, 3, 5] (of 6) have "token": "" and "bytes": []' in result.message
    assert "the bytes cannot rebuild the text" in result.message
    assert "U+FFFD" in result.message


@pytest.mark.parametrize("content", ["", "\ufffd"])
def test_lp_shape_message_without_empty_tokens(content):
    from conformance._checks.logprobs import _misspelling

    entries = [{"token": "a", "bytes": [97], "logprob": -1.0, "top_logprobs": []}]
    assert _misspelling(entries, content + "b", "a") == (
        f"at character 0 the content has {content + 'b'!r}, the tokens 'a'"
    )


def _finish_stream(body: dict) -> web.Response:
    """vLLM's stream: the last token's text beside finish_reason "length"; "" beside "stop"
    (the end token's text), which the basic stream of this server always reaches."""
    cut = body.get("max_tokens", 64) <= 4
    finish = {"content": "n"} if cut else {"content": ""}
    deltas = [({"role": "assistant", "content": ""}, None), ({"content": "The"}, None)]
    deltas.append((finish, "length" if cut else "stop"))
    chunks = [
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1796032179,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }
        for delta, reason in deltas
    ]
    data = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
    return web.Response(body=data + b"data: [DONE]\n\n", content_type="text/event-stream")


def test_finish_empty_delta_sees_the_text_vllm_puts_beside_length():
    async def handle(request: web.Request) -> web.Response:
        return _finish_stream(await request.json())

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    with RawServer(app) as server:
        endpoint = Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=10)
        result = run(endpoint, ["finish_empty_delta", "finish_once"]).results
    statuses = {r.check.id: r for r in result}
    assert statuses["finish_once"].status == "passed"
    assert statuses["finish_empty_delta"].status == "warning"
    assert '{"content": "n"}' in statuses["finish_empty_delta"].outcome.text
