"""Small helpers that turn what an exchange shows into a CheckFailed saying what was seen."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from conformance import _json as strict_json
from conformance._http import Exchange
from conformance._outcome import CheckFailed
from conformance._sse import Event, parse_events

__all__ = [
    "ANSWERED",
    "REFUSED",
    "chunks_of",
    "envelope_problem",
    "is_prompt_filter_chunk",
    "json_body",
    "require_choices",
    "require_refused",
    "require_status",
    "require_status_in",
]

REFUSED = (400, 422)  # statuses refusing an invalid request (422: FastAPI-based servers, vLLM)
ANSWERED = range(100, 500)  # any answer but a server error


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


def require_status_in(
    what: str,
    exchange: Exchange,
    accepted: Collection[int],
    expected: str,
    *,
    about: tuple[str, ...] = (),
) -> None:
    """Fail with the message ``what`` unless the exchange got one of the ``accepted`` statuses
    (``range(100, 500)``: any answer but a 5xx); the failure says ``expected`` and what came
    instead, the status or the transport error; ``about``: the request's members it is about
    (:class:`CheckFailed`)."""
    if exchange.status not in accepted:
        raise CheckFailed(
            what,
            expected=expected,
            received=str(exchange.status or exchange.error),
            exchange=exchange,
            about=about,
        )


def require_refused(
    what: str, exchange: Exchange, expected: str = "400 (or 422)", *, about: tuple[str, ...] = ()
) -> None:
    """Fail unless the request was refused with 400 or 422; the failure says ``what`` was not
    refused and what came instead; ``about``: the request's members it is about."""
    if exchange.status not in REFUSED:
        seen = f"{exchange.status} {exchange.content_type}" if exchange.status else exchange.error
        raise CheckFailed(
            f"{what} was not refused",
            expected=expected,
            received=str(seen),
            exchange=exchange,
            about=about,
        )


def json_body(exchange: Exchange) -> Any:
    """The answer's JSON body, or a failure saying it is not JSON."""
    try:
        return exchange.json()
    except ValueError as exc:
        raise CheckFailed(
            "the body is not JSON", expected="a JSON body", received=str(exc), exchange=exchange
        ) from None


def is_prompt_filter_chunk(chunk: Any) -> bool:
    """Azure OpenAI's filter-only chunk: ``choices: []`` with ``prompt_filter_results`` and no
    usage (it leads Azure streams; the official SDKs skip it, clients indexing choices[0] break,
    which no_prompt_filter_chunk reports as a warning)."""
    return (
        isinstance(chunk, dict)
        and chunk.get("choices") == []
        and "prompt_filter_results" in chunk
        and not isinstance(chunk.get("usage"), dict)
    )


def chunks_of(
    exchange: Exchange, *, prompt_filters: bool = False
) -> tuple[list[Event], list[dict[str, Any]]]:
    """The events of a 200 stream and the JSON chunks among them ([DONE] and non-JSON left
    out; Azure's prompt-filter chunks too, unless ``prompt_filters``); fails when the stream
    did not start."""
    require_status(exchange, 200)
    events, _ = parse_events(exchange.body)
    chunks = []
    for event in events:
        if event.data == "[DONE]":
            continue
        try:
            chunk = strict_json.loads(event.data)
        except ValueError:
            continue
        if isinstance(chunk, dict) and (prompt_filters or not is_prompt_filter_chunk(chunk)):
            chunks.append(chunk)
    if not chunks:
        raise CheckFailed(
            "the stream holds no JSON chunk",
            expected="chat.completion.chunk events",
            received=f"{len(events)} events",
            exchange=exchange,
        )
    return events, chunks


def require_choices(what: str, exchange: Exchange) -> None:
    """Fail with the message ``what`` unless the answer's body is JSON with a non-empty choices
    list (a chat completion, as far as a client's choices[0] goes)."""
    body = json_body(exchange)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        raise CheckFailed(
            what,
            expected="a chat.completion with choices",
            received=exchange.body.decode("utf-8", "replace")[:200],
            exchange=exchange,
        )


def envelope_problem(body: Any) -> str | None:
    """What keeps ``body`` from being the OpenAI error envelope, or None:
    {"error": {"message": str, "type": str, "param": str|null, "code": str|int|null}}
    (ErrorResponse of openai/openai-openapi ``openapi.yaml``; schemas/strict/error.json)."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return f'the body is not {{"error": {{...}}}}: {json.dumps(body)[:200]}'
    error = body["error"]
    if not isinstance(error.get("message"), str):
        return f"error.message is not a string: {error.get('message')!r}"
    if not isinstance(error.get("type"), str):
        return f"error.type is not a string: {error.get('type')!r}"
    for key in ("param", "code"):
        if key not in error:
            return f"error.{key} is missing (null when it does not apply)"
    if error["param"] is not None and not isinstance(error["param"], str):
        return f"error.param is not a string or null: {error['param']!r}"
    code = error["code"]
    if code is not None and (not isinstance(code, str | int) or isinstance(code, bool)):
        return f"error.code is not a string, integer or null: {code!r}"
    return None
