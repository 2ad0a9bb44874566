"""Issue 12 classes 2 and 8 against servers the mock's defects do not show: strict JSON, created
against the clock, OpenAI's -9999 (finite, passes) and vLLM's sampled-token-first top_logprobs
(unsorted, fails), and -Infinity in one stream event (a finding, not a crash)."""

from __future__ import annotations

import json
import time

import pytest
from aiohttp import web

from conformance import Endpoint, run
from conformance._checks.values import created_problem
from conformance._json import loads

from .test_broken_endpoints import RawServer


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"logprob": -Infinity}'])
def test_nan_and_infinity_are_not_json(text):
    with pytest.raises(ValueError, match="is not JSON"):
        loads(text)


def test_json_numbers_still_parse():
    assert loads(b'{"a": -9999.0, "b": [1, 2.5e-3]}') == {"a": -9999.0, "b": [1, 0.0025]}


NOW = 1_796_000_000.0


@pytest.mark.parametrize(
    ("created", "said"),
    [
        (int(NOW), None),
        (int(NOW) - 3600, None),  # an hour of skew is tolerated
        ("1796000000", None),  # not an integer: the schema checks' finding
        (int(NOW * 1000), "not in seconds: read as milliseconds it is 2026-"),
        (1731542400, "(2024-11-14T00:00:00Z) is -17904.9 h from the client's clock"),
        (int(NOW) + 86400, "+24.0 h from the client's clock"),
    ],
    ids=["now", "hour-behind", "string", "milliseconds", "model-date", "day-ahead"],
)
def test_created_problem(created, said):
    problem = created_problem(created, NOW)
    assert (problem is None) if said is None else (said in problem), problem


def _entry(token, logprob, alternatives):
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives
        ],
    }


# vLLM's order with a sampled token of rank 2: the sampled token first, then the top ones.
SAMPLED_FIRST = [_entry("Red", -1.2, [("Red", -1.2), ("Blue", -0.4), ("Green", -9999.0)])]
SORTED = [_entry("Red", -1.2, [("Blue", -0.4), ("Red", -1.2), ("Green", -9999.0)])]


def _logprobs_server(entries, stream_event=None):
    """Answers every request with one choice "Red" and ``entries`` as its logprobs; a stream
    gets ``stream_event`` (bytes) as its content event when given."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        head = {"id": "chatcmpl-1", "created": int(time.time()), "model": "m"}
        usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": "Red"},
                "logprobs": {"content": entries},
                "finish_reason": "stop",
            }
            answer = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            return web.json_response(answer)
        chunk = {**head, "object": "chat.completion.chunk"}
        content = {"index": 0, "delta": {"content": "Red"}, "logprobs": {"content": entries}}
        events = [
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {**chunk, "choices": [content]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        data = [f"data: {json.dumps(e)}\n\n".encode() for e in events]
        if stream_event is not None:
            data[1] = stream_event
        body_bytes = b"".join(data) + b"data: [DONE]\n\n"
        return web.Response(body=body_bytes, content_type="text/event-stream")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    return RawServer(app)


def _results(server, ids):
    endpoint = Endpoint(
        f"http://127.0.0.1:{server.port}/v1",
        "m",
        timeout=10,
        capabilities=frozenset({"core", "logprobs", "ext"}),
    )
    return {r.check.id: r for r in run(endpoint, ids).results}


def test_openai_minus_9999_is_finite_and_sorted_lists_pass():
    with _logprobs_server(SORTED) as server:
        results = _results(server, ["lp_sampling_finite", "lp_top_sorted"])
    assert {k: r.status for k, r in results.items()} == {
        "lp_sampling_finite": "passed",
        "lp_top_sorted": "passed",
    }


def test_the_sampled_token_first_is_unsorted():
    with _logprobs_server(SAMPLED_FIRST) as server:
        result = _results(server, ["lp_top_sorted"])["lp_top_sorted"]
    assert result.status == "failed"
    assert "not sorted, most likely first" in result.outcome.text
    assert '[["Red", -1.2], ["Blue", -0.4]' in result.outcome.text


def test_minus_infinity_in_one_stream_event_is_a_finding_not_a_crash():
    event = b'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, '
    event += b'"model": "m", "choices": [{"index": 0, "delta": {"content": "Red"}, '
    event += b'"logprobs": {"content": [{"token": "Red", "logprob": -Infinity}]}}]}\n\n'
    with _logprobs_server(SORTED, stream_event=event) as server:
        result = _results(server, ["lp_sampling_finite"])["lp_sampling_finite"]
    assert result.status == "failed"
    assert "top_p, streamed is not JSON" in result.outcome.text
    assert "event 1: -Infinity is not JSON" in result.outcome.text
