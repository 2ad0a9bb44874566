"""The stream, usage and n checks pass servers that are right in ways the mock's dialects do not
show: role null in later deltas, null content in the finish delta, no usage at all, and a
reasoning model whose first tokens are all reasoning."""

from __future__ import annotations

import json

from aiohttp import web

from conformance import Endpoint, run

from .test_broken_endpoints import RawServer


def _chunk(index: int, delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1731584707,
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def _answer(body: dict, key: str) -> web.StreamResponse | web.Response:
    """Choice i says f"word{i}" under ``key`` (content or reasoning_content)."""
    n = body.get("n") or 1
    if not body.get("stream"):
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": None} | {key: f"word{i}"},
                "finish_reason": "length",
            }
            for i in range(n)
        ]
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1731584707,
                "model": "m",
                "choices": choices,
            }
        )
    chunks = []
    for i in range(n):
        chunks.append(_chunk(i, {"role": "assistant", "content": None}))
        chunks.append(_chunk(i, {"role": None, key: f"word{i}"}))
        chunks.append(_chunk(i, {"content": None}, "length"))
    body_bytes = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
    return web.Response(body=body_bytes + b"data: [DONE]\n\n", content_type="text/event-stream")


def _server(key: str) -> RawServer:
    async def handle(request: web.Request) -> web.StreamResponse:
        return _answer(await request.json(), key)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    return RawServer(app)


def _statuses(server: RawServer, ids: list[str]) -> dict[str, str]:
    endpoint = Endpoint(
        f"http://127.0.0.1:{server.port}/v1", "m", timeout=10, capabilities=frozenset({"core", "n"})
    )
    return {r.check.id: r.status for r in run(endpoint, ids).results}


def test_null_role_later_and_null_finish_content_pass():
    ids = ["role_first_only", "delta_present", "finish_once", "nothing_after_finish"]
    ids += ["finish_empty_delta", "no_empty_choices_unless_usage"]
    with _server("content") as server:
        assert _statuses(server, ids) == dict.fromkeys(ids, "passed")


def test_no_usage_is_a_failure():
    ids = ["usage_reported", "usage_nonstream", "usage_stream_eq_nonstream", "usage_opt_in"]
    with _server("content") as server:
        statuses = _statuses(server, ids)
    assert statuses["usage_reported"] == "failed"  # issue 12: metering depends on it
    assert statuses["usage_nonstream"] == "skipped"  # no counts to judge
    assert statuses["usage_stream_eq_nonstream"] == "skipped"
    assert statuses["usage_opt_in"] == "failed"  # this server accepts stream_options unasked


def test_a_reasoning_model_passes_the_n_checks():
    with _server("reasoning_content") as server:
        assert _statuses(server, ["n_nonstream", "n_stream"]) == {
            "n_nonstream": "passed",
            "n_stream": "passed",
        }
