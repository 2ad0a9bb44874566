"""Small helpers that turn what an exchange shows into a CheckFailed saying what was seen."""

from __future__ import annotations

import json
from typing import Any

from conformance._http import Exchange
from conformance._outcome import CheckFailed
from conformance._sse import Event, parse_events

__all__ = ["chunks_of", "json_body", "require_status"]


def require_status(exchange: Exchange, *expected: int) -> None:
    """Fail unless the exchange got an answer with one of the ``expected`` statuses."""
    if exchange.status is None:
        raise CheckFailed("no answer came", expected=f"status {expected}", exchange=exchange)
    if exchange.status not in expected:
        raise CheckFailed(
            "unexpected status",
            expected=" or ".join(map(str, expected)),
            received=str(exchange.status),
            exchange=exchange,
        )


def json_body(exchange: Exchange) -> Any:
    """The answer's JSON body, or a failure saying it is not JSON."""
    try:
        return exchange.json()
    except ValueError as exc:
        raise CheckFailed(
            "the body is not JSON", expected="a JSON body", received=str(exc), exchange=exchange
        ) from None


def chunks_of(exchange: Exchange) -> tuple[list[Event], list[dict[str, Any]]]:
    """The events of a 200 stream and the JSON chunks among them ([DONE] and non-JSON left
    out); fails when the stream did not start."""
    require_status(exchange, 200)
    events, _ = parse_events(exchange.body)
    chunks = []
    for event in events:
        if event.data == "[DONE]":
            continue
        try:
            chunk = json.loads(event.data)
        except ValueError:
            continue
        if isinstance(chunk, dict):
            chunks.append(chunk)
    if not chunks:
        raise CheckFailed(
            "the stream holds no JSON chunk",
            expected="chat.completion.chunk events",
            received=f"{len(events)} events",
            exchange=exchange,
        )
    return events, chunks
