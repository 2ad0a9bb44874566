"""The answer pipeline of POST /chat/completions, in the order of its stages:

    source (cassette | kept | template | model)  -> _sources, _plan
      -> shape (the provider's flavour)          -> _flavours
      -> defects (at their named stages)         -> _defects
      -> encode (JSON, or SSE events)            -> here, _sse
      -> timing and faults                       -> _delivery

A cassette skips shape, defects and encode (its recorded bytes go out); a kept answer skips
them too (its bytes were made for the same body before). A live answer goes through shape and
encode token by token as the model makes them (nothing else applies to it: see
_sources.choose_source).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator

from aiohttp import web

from mockserver._answer import Answer
from mockserver._defects import ActiveDefects
from mockserver._delivery import send, send_cassette
from mockserver._errors import ApiError, error_body
from mockserver._faults import with_multibyte
from mockserver._flavours import LiveChunks, completion_body, stream_chunks
from mockserver._generate import LiveAnswer
from mockserver._plan import Plan, plan_answer, valid_body
from mockserver._rendered import Rendered
from mockserver._replies import reply_answer
from mockserver._sources import find_cassette, live_answer, whole_answer
from mockserver._sse import (
    DONE,
    SSE_CONTENT_TYPE,
    encode_chunk,
    encode_chunks,
    encode_data,
    encode_error,
    write_as_made,
)
from mockserver._state import Call, MockState

__all__ = ["chat_completion", "render"]

log = logging.getLogger("mockserver")

JSON_CONTENT_TYPE = "application/json"


async def chat_completion(state: MockState, call: Call) -> web.StreamResponse:
    """The answer to a chat completion request, stage by stage."""
    _check_content_type(call.request)
    if state.replies:  # a test scripted the next answers
        scripted = await _send_reply(state, call)
        if scripted is not None:
            return scripted
    # this body was validated and answered before (by the server's own defects)
    own = call.defects is state.defects
    kept = state.answers.get(call.raw) if own else None
    found = find_cassette(state, call, kept=kept is not None)
    if found is not None:
        return await send_cassette(state, call, *found)
    plan, body = plan_answer(state, call, kept)
    if plan.source == "cached" and kept is not None:
        return await send(state, call, kept, plan)
    assert body is not None
    if plan.source == "live":
        return await _stream_live(state, call, await live_answer(state, body))
    answer = await whole_answer(state, plan.source, body, call)
    if plan.split_utf8:
        answer = with_multibyte(answer)  # a multi-byte character for the fault to split
    rendered = render(state, answer, stream=bool(body.get("stream")), defects=call.defects)
    if plan.keep and own:
        state.answers.put(call.raw, rendered)
    return await send(state, call, rendered, plan)


async def _send_reply(state: MockState, call: Call) -> web.StreamResponse | None:
    """The scripted reply matching ``call``'s valid body, through encode, timing and faults
    (a status fault is raised first and leaves the reply queued); None when none matches
    or the body is invalid (the usual stages answer it)."""
    try:
        body = valid_body(state, call)
    except ApiError:
        return None
    reply = state.replies.first(body)
    if reply is None:
        return None
    fault = state.fault_for(call, body["model"])
    state.replies.use(reply)
    if reply.status is not None:
        reply.raise_error()
    plan = Plan("scripted", fault, state.timed)
    stream = body.get("stream") is True
    if reply.chunks is not None:
        events = [encode_chunk(c) if isinstance(c, dict) else encode_data(c) for c in reply.chunks]
        if reply.done:
            events.append(DONE)
        rendered = Rendered(body["model"], True, tuple(events), SSE_CONTENT_TYPE, len(events))
        return await send(state, call, rendered, plan)
    answers = state.answers
    answer = reply_answer(reply, body, completion_id=answers.completion_id, created=answers.created)
    return await send(state, call, render(state, answer, stream=stream, defects=call.defects), plan)


def _check_content_type(request: web.Request) -> None:
    """Raise the 400 of a body that is not sent as JSON."""
    content_type = request.headers.get("Content-Type", "application/json")
    if "json" not in content_type.lower():
        raise ApiError(
            400,
            f"Unsupported Content-Type {content_type!r}: send the request as application/json.",
        )


def render(
    state: MockState, answer: Answer, *, stream: bool, defects: ActiveDefects | None = None
) -> Rendered:
    """``answer`` shaped in the server's flavour, passed through the ``defects`` (the
    server's when None) and encoded: one JSON body, or the SSE events of a ``stream``."""
    flavour, tokens = state.flavour, answer.usage.completion_tokens
    defects = state.defects if defects is None else defects
    if not stream:
        completion = defects.apply("completion", completion_body(answer, flavour))
        payload = json.dumps(completion).encode()
        return Rendered(answer.model, False, (payload,), JSON_CONTENT_TYPE, tokens)
    chunks = defects.apply("chunks", stream_chunks(answer, flavour))
    events = defects.apply("events", [*map(encode_chunk, chunks), DONE])
    content_type = defects.apply("stream_content_type", SSE_CONTENT_TYPE)
    return Rendered(answer.model, True, tuple(events), content_type, tokens)


async def _stream_live(state: MockState, call: Call, live: LiveAnswer) -> web.StreamResponse:
    """Stream ``live``: each batch of tokens shaped and encoded as the model makes it; a stream
    that ends early (the client left) stops the model."""
    try:
        events = _live_events(live, state)
        return await write_as_made(call.request, events, headers={"x-request-id": call.id})
    finally:
        live.cancel.set()


async def _live_events(live: LiveAnswer, state: MockState) -> AsyncGenerator[bytes, None]:
    """The bytes of a live answer, a write per batch of tokens; the last write ends with
    ``[DONE]``. When the model fails once the stream has started, an error event ends it."""
    chunks = LiveChunks(live.head, state.flavour)
    try:
        async for tokens in live.tokens():
            ready = chunks.tokens(tokens)
            if ready:
                yield encode_chunks(ready)
    except Exception as exc:
        log.error("generation failed mid-stream", exc_info=exc)
        yield encode_error(error_body(ApiError(500, "The server had an error while generating.")))
        return
    assert live.answer is not None
    yield encode_chunks(chunks.close(live.answer)) + DONE
