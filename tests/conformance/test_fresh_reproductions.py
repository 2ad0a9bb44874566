"""Issue 12's acceptance: public bug reports not named in the issue nor among the mock's
defects, each rebuilt as a proxy in front of the clean mock that rewrites its answers the way
the report describes, and the checks of the suite that catch it. The first run missed two
(an empty chunk id, an empty model): id_and_model_named closed that gap."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from conformance import Endpoint, load_profile, run
from mockserver import MockConfig, MockServer

from .test_broken_endpoints import RawServer

PROFILE = load_profile("mock")
# Safety nets, not speed figures: a busy 2-core machine can make one request take seconds.
REQUEST_TIMEOUT = 60
CHECK_TIMEOUT = 240

Chunk = dict[str, Any]


@dataclass(frozen=True)
class Quirk:
    """One report: how it rewrites a non-stream answer and each stream chunk (a chunk may
    become several; ``state`` lives for one stream)."""

    url: str
    answer: Callable[[Chunk], Chunk] = lambda body: body
    chunk: Callable[[Chunk, dict[str, Any]], list[Chunk]] = lambda c, state: [c]


def _choices(body: Chunk) -> list[Chunk]:
    return body.get("choices") or []


def _without(key: str) -> Callable[[Chunk], Chunk]:
    def drop(body: Chunk) -> Chunk:
        body.pop(key, None)
        return body

    return drop


def _set_chunk(key: str, value: object) -> Callable[[Chunk, dict[str, Any]], list[Chunk]]:
    def put(chunk: Chunk, state: dict[str, Any]) -> list[Chunk]:
        chunk[key] = value
        return [chunk]

    return put


def _stop_beside_tool_calls(body: Chunk) -> Chunk:
    for choice in _choices(body):
        if choice.get("finish_reason") == "tool_calls":
            choice["finish_reason"] = "stop"
    return body


def _stream_stop_beside_tool_calls(chunk: Chunk, state: dict[str, Any]) -> list[Chunk]:
    return [_stop_beside_tool_calls(chunk)]


def _no_role(chunk: Chunk, state: dict[str, Any]) -> list[Chunk]:
    for choice in _choices(chunk):
        (choice.get("delta") or {}).pop("role", None)
    return [chunk]


def _summary_tool_chunk(chunk: Chunk, state: dict[str, Any]) -> list[Chunk]:
    """LiteLLM: after the argument deltas, one more chunk repeats each call whole (id, name
    and the full arguments), so a client that joins deltas gets the arguments twice."""
    calls: dict[tuple[int, int], Chunk] = state.setdefault("calls", {})
    out = []
    for choice in _choices(chunk):
        for delta_call in (choice.get("delta") or {}).get("tool_calls") or []:
            key = (choice["index"], delta_call["index"])
            whole = calls.setdefault(key, {"index": delta_call["index"], "type": "function"})
            whole.setdefault("id", delta_call.get("id"))
            function = delta_call.get("function") or {}
            whole.setdefault("function", {"name": function.get("name"), "arguments": ""})
            whole["function"]["arguments"] += function.get("arguments") or ""
        if choice.get("finish_reason") == "tool_calls":
            repeat = [
                json.loads(json.dumps(c)) for (i, _), c in calls.items() if i == choice["index"]
            ]
            summary = {
                **chunk,
                "choices": [
                    {
                        "index": choice["index"],
                        "delta": {"tool_calls": repeat},
                        "finish_reason": None,
                        "logprobs": None,
                    }
                ],
            }
            out.append(summary)
    return [*out, chunk]


QUIRKS: dict[str, Quirk] = {
    # Foundry Local: stream chunks say object "chat.completion".
    "chunk-object-completion": Quirk(
        "https://github.com/microsoft/foundry-local/issues/31",
        chunk=_set_chunk("object", "chat.completion"),
    ),
    # TGI: every stream chunk has id "".
    "chunk-id-empty": Quirk(
        "https://github.com/huggingface/text-generation-inference/issues/1782",
        chunk=_set_chunk("id", ""),
    ),
    # OpenVINO Model Server: stream chunks carry no id at all.
    "chunk-id-missing": Quirk(
        "https://github.com/openvinotoolkit/model_server/issues/3553",
        chunk=lambda c, state: [_without("id")(c)],
    ),
    # Gemini's OpenAI-compatible endpoint: the non-stream answer has no id.
    "answer-id-missing": Quirk(
        "https://github.com/softwaremill/sttp-ai/issues/338",
        answer=_without("id"),
    ),
    # OpenVINO Model Server: finish_reason "stop" although the model called a tool.
    "stop-beside-tool-calls": Quirk(
        "https://github.com/openvinotoolkit/model_server/issues/3927",
        answer=_stop_beside_tool_calls,
        chunk=_stream_stop_beside_tool_calls,
    ),
    # llama.cpp server: no delta carries role "assistant" ("missing role for choice 0").
    "stream-role-missing": Quirk(
        "https://github.com/ggml-org/llama.cpp/pull/5880",
        chunk=_no_role,
    ),
    # vLLM: the answer's model is "" (the served model's name is not echoed).
    "answer-model-empty": Quirk(
        "https://github.com/vllm-project/vllm/pull/15938",
        answer=lambda body: {**body, "model": ""},
        chunk=_set_chunk("model", ""),
    ),
    # LiteLLM proxy: a summary chunk repeats each streamed tool call whole.
    "tool-call-summary-chunk": Quirk(
        "https://github.com/BerriAI/litellm/issues/20480",
        chunk=_summary_tool_chunk,
    ),
}


def _proxy(upstream: str, quirk: Quirk) -> RawServer:
    """An aiohttp server that passes every request to ``upstream`` (the mock's /v1 URL) and
    rewrites the 200 answers of /chat/completions by ``quirk``; streams stay streamed, chunk
    by chunk."""

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        url = f"{upstream}/{request.match_info['tail']}"
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
            session.request(request.method, url, headers=headers, data=await request.read()) as up,
        ):
            out = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
            rewrite = up.status == 200 and request.path.endswith("/chat/completions")
            if rewrite and up.content_type == "text/event-stream":
                return await _stream(request, up, out, quirk)
            body = await up.read()
            if rewrite and up.content_type == "application/json":
                body = json.dumps(quirk.answer(json.loads(body))).encode()
            return web.Response(status=up.status, body=body, headers=out)

    app = web.Application()
    app.router.add_route("*", "/v1/{tail:.*}", handle)
    return RawServer(app)


_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


async def _stream(
    request: web.Request, up: aiohttp.ClientResponse, headers: dict[str, str], quirk: Quirk
) -> web.StreamResponse:
    response = web.StreamResponse(status=up.status, headers=headers)
    await response.prepare(request)
    state: dict[str, Any] = {}
    try:
        async for line in up.content:
            if line.startswith(b"data: {"):
                for chunk in quirk.chunk(json.loads(line[6:]), state):
                    await response.write(b"data: " + json.dumps(chunk).encode() + b"\n")
            else:
                await response.write(line)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the suite stopped reading (checks that read a stream only in part)
    return response


def caught(quirk: Quirk, ids: list[str] | None = None) -> dict[str, str]:
    """check id -> status of the checks that failed or warned against the quirk's proxy."""
    with MockServer(MockConfig(models=("m",))) as mock, _proxy(mock.base_url, quirk) as proxy:
        endpoint = Endpoint(
            f"http://127.0.0.1:{proxy.port}/v1",
            "m",
            timeout=REQUEST_TIMEOUT,
            capabilities=PROFILE.capabilities,
            context_length=PROFILE.context_length,
        )
        result = run(endpoint, ids, check_timeout=CHECK_TIMEOUT)
    return {r.check.id: r.status for r in result.results if r.status in ("failed", "warning")}


# report -> the checks that catch it (a full run found them; schemathesis_openapi and
# prop_valid_requests catch the schema cases too, when they draw a stream or a plain answer).
CAUGHT: dict[str, set[str]] = {
    "chunk-object-completion": {"chunk_schema", "chunk_meta_stable"},
    "chunk-id-missing": {"chunk_schema"},
    "answer-id-missing": {"resp_schema"},
    "stop-beside-tool-calls": {"tool_nonstream", "tool_stream_not_dropped"},
    "stream-role-missing": {"role_first_only", "n_stream"},
    "tool-call-summary-chunk": {"tool_stream_not_dropped"},
    # The two gaps this set found, closed by id_and_model_named (issue 12).
    "chunk-id-empty": {"id_and_model_named"},
    "answer-model-empty": {"id_and_model_named"},
}
CASES = [pytest.param(name, ids, id=name) for name, ids in CAUGHT.items()]


def test_the_proxy_alone_changes_nothing():
    ids = set().union(*CAUGHT.values())
    assert caught(Quirk("-"), sorted(ids)) == {}


@pytest.mark.parametrize(("name", "ids"), CASES)
def test_fresh_report_is_caught(name: str, ids: set[str]):
    """The report at QUIRKS[name].url, rebuilt, fails exactly the checks ``ids``."""
    assert set(caught(QUIRKS[name], sorted(ids))) == ids, QUIRKS[name].url
