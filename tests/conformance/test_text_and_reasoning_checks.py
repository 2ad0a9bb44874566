"""non_ascii_stream_text, non_ascii_prompt_tokens and answer_in_content against hand-made
servers: what real engines send passes (ASCII babble to a Thai prompt, U+FFFD the model wrote
itself, reasoning beside content, a 400 to an unknown field), what the defects send is named."""

from __future__ import annotations

import json

from aiohttp import web

from conformance import Endpoint, run

from .test_broken_endpoints import RawServer

IDS = ["non_ascii_stream_text", "non_ascii_prompt_tokens", "answer_in_content"]


def _chunk(delta, finish=None, usage=None):
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = usage
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _usage(body):
    prompt = len(json.dumps(body["messages"], ensure_ascii=False).encode())  # bytes: monotonic
    return {"prompt_tokens": prompt, "completion_tokens": 3, "total_tokens": prompt + 3}


def _serve(answer):
    """A server whose non-stream message (and stream deltas) come from ``answer(body)``: a dict
    of message fields, or a web.Response to send as is; streams send the raw event bytes from
    the "events" key when the answer has one."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        message = answer(body)
        if isinstance(message, web.Response):
            return message
        if body.get("stream"):
            raw = message.pop("events", None)
            message.pop("finish", None)
            if raw is None:
                raw = _chunk({"role": "assistant", **message}) + _chunk({}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                raw += _chunk(None, usage=_usage(body))
            return web.Response(body=raw + b"data: [DONE]\n\n", content_type="text/event-stream")
        message.pop("events", None)
        finish = message.pop("finish", "stop")
        return web.json_response(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", **message},
                        "finish_reason": finish,
                    }
                ],
                "usage": _usage(body),
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    return RawServer(app)


def _results(answer):
    with _serve(answer) as server:
        endpoint = Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=10)
        return {r.check.id: r for r in run(endpoint, IDS).results}


def test_ascii_babble_to_a_thai_prompt_passes():
    results = _results(lambda body: {"content": "the model reads the replyction"})
    assert {k: r.status for k, r in results.items()} == dict.fromkeys(IDS, "passed")


def test_a_replacement_character_the_model_wrote_itself_passes():
    results = _results(lambda body: {"content": "ab\ufffdc สวัสดี"})
    assert results["non_ascii_stream_text"].status == "passed"


def test_a_character_split_between_events_is_named():
    text = "Grüße"
    raw = text.encode()
    cut = raw.index("ü".encode()) + 1  # inside the two bytes of ü

    def answer(body):
        events = (
            b"data: "
            + json.dumps(
                {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "m",
                    "choices": [{"index": 0, "delta": {"content": "@"}, "finish_reason": None}],
                },
                ensure_ascii=False,
            ).encode()
        )
        first, second = events.replace(b"@", raw[:cut]), events.replace(b"@", raw[cut:])
        return {"content": text, "events": first + b"\n\n" + second + b"\n\n" + _chunk({}, "stop")}

    result = _results(answer)["non_ascii_stream_text"]
    assert result.status == "failed"
    assert "U+FFFD" in result.message and "Grüße" in result.outcome.text


def test_reasoning_beside_content_and_refused_switches_pass():
    def answer(body):
        if "chat_template_kwargs" in body or "reasoning_effort" in body:
            error = {"message": "unknown field", "type": "invalid_request_error"}
            return web.json_response({"error": {**error, "param": None, "code": None}}, status=400)
        return {"content": "Hi!", "reasoning_content": "The user greets me."}

    assert _results(answer)["answer_in_content"].status == "passed"


def test_a_reasoning_model_cut_while_thinking_passes_unless_thinking_was_off():
    def answer(body):
        return {"content": None, "reasoning_content": "Let me think", "finish": "length"}

    result = _results(answer)["answer_in_content"]
    assert result.status == "failed"
    assert "enable_thinking false is in reasoning_content" in result.message
    assert "content null" in result.outcome.text


def test_a_cut_thought_with_thinking_on_passes():
    def answer(body):
        if (body.get("chat_template_kwargs") or {}).get("enable_thinking") is False:
            return {"content": "Hi!"}
        return {"content": None, "reasoning_content": "Let me think", "finish": "length"}

    assert _results(answer)["answer_in_content"].status == "passed"


def test_prompt_tokens_counted_in_utf8_bytes_pass():
    def answer(body):
        return {"content": "Hi!"}

    with _serve(answer) as server:
        endpoint = Endpoint(f"http://127.0.0.1:{server.port}/v1", "m", timeout=10)
        result = run(endpoint, ["non_ascii_prompt_tokens"]).results[0]
    assert result.status == "passed"  # more text, more tokens; the same streamed
