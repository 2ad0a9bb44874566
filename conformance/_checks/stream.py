"""Stream framing and chunk checks (catalogue group A)."""

from __future__ import annotations

import json

from conformance._assertions import chunks_of, require_status
from conformance._context import Context
from conformance._outcome import CheckFailed
from conformance._registry import check
from conformance._sse import parse_events

__all__ = ["chunk_meta_stable", "chunk_schema", "sse_done"]


@check(group="stream")
async def sse_done(ctx: Context) -> None:
    """A stream is text/event-stream of data events, JSON objects each, closed by data: [DONE]."""
    exchange = await ctx.stream()
    require_status(exchange, 200)
    if exchange.content_type != "text/event-stream":
        raise CheckFailed(
            "wrong Content-Type for a stream",
            expected="text/event-stream",
            received=exchange.content_type or "(none)",
            exchange=exchange,
        )
    if exchange.error:
        raise CheckFailed(
            "the stream did not end cleanly", received=exchange.error, exchange=exchange
        )
    events, problems = parse_events(exchange.body)
    if problems:
        raise CheckFailed("SSE framing is broken", received="; ".join(problems), exchange=exchange)
    if not events:
        raise CheckFailed("the stream holds no event", exchange=exchange)
    for position, event in enumerate(events):
        if event.event == "error":
            raise CheckFailed(
                f"event {position} uses 'event: error' framing",
                expected='errors as data: {"error": {...}} events',
                received=event.data[:200],
                exchange=exchange,
            )
    *body_events, last = events
    if last.data != "[DONE]":
        raise CheckFailed(
            "the last event is not [DONE]",
            expected="data: [DONE]",
            received=f"data: {last.data[:200]}",
            exchange=exchange,
        )
    for position, event in enumerate(body_events):
        if event.data == "[DONE]":
            raise CheckFailed(
                f"event {position} is [DONE] but more events follow", exchange=exchange
            )
        try:
            value = json.loads(event.data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise CheckFailed(
                f"event {position} (line {event.line}) is not a JSON object",
                expected="a chat.completion.chunk object",
                received=f"data: {event.data[:200]}",
                exchange=exchange,
            )


@check(group="stream")
async def chunk_schema(ctx: Context) -> None:
    """Every chunk of a stream validates against the chat.completion.chunk schema."""
    exchange = await ctx.stream()
    _, chunks = chunks_of(exchange)
    for position, chunk in enumerate(chunks):
        error = ctx.validate("chat-completion-chunk", chunk)
        if error:
            raise CheckFailed(
                f"chunk {position} does not match the chat.completion.chunk schema "
                f"({ctx.schema_level})",
                received=error,
                exchange=exchange,
            )


@check(group="stream")
async def chunk_meta_stable(ctx: Context) -> None:
    """Every chunk says object chat.completion.chunk, with the same id, created and model."""
    exchange = await ctx.stream()
    _, chunks = chunks_of(exchange)
    first = chunks[0]
    if not isinstance(first.get("created"), int) or isinstance(first.get("created"), bool):
        raise CheckFailed(
            "created is not an integer",
            expected="unix seconds as an integer",
            received=repr(first.get("created")),
            exchange=exchange,
        )
    for position, chunk in enumerate(chunks):
        if chunk.get("object") != "chat.completion.chunk":
            raise CheckFailed(
                f"chunk {position} has the wrong object",
                expected="chat.completion.chunk",
                received=repr(chunk.get("object")),
                exchange=exchange,
            )
        for key in ("id", "created", "model", "system_fingerprint"):
            if key == "system_fingerprint" and key not in first:
                continue
            if chunk.get(key) != first.get(key):
                raise CheckFailed(
                    f"{key} changes within the stream at chunk {position}",
                    expected=repr(first.get(key)),
                    received=repr(chunk.get(key)),
                    exchange=exchange,
                )
