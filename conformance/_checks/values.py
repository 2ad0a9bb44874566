"""Checks of well-typed values against what the suite knows (groups "response" and "stream"):
``created`` against the client's clock, choice indices against the choices asked for, ids and
``model`` that name something. The
schemas accept any integer there; a client that sorts, caches or routes by them does not.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from conformance._assertions import chunks_of, json_body, require_status
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed
from conformance._registry import check

__all__ = ["choice_index", "created_problem", "created_recent", "id_and_model_named"]

# How far created may be from the client's clock, in seconds: generous, for clocks that drift
# and runs that take long (the shared answers may be minutes old when a check reads them).
CLOCK_SKEW = 2 * 3600
_SECONDS_BEFORE_5138 = 10**11  # a larger created is not in seconds (milliseconds: year 1973+)


def _iso(seconds: float) -> str:
    """``seconds`` since the epoch as an ISO 8601 UTC time (or "out of range")."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "out of range"


def created_problem(created: Any, now: float) -> str | None:
    """What is wrong with ``created`` for an answer made near ``now`` (client's Unix seconds),
    or None: milliseconds or finer, or more than CLOCK_SKEW away from ``now``. A created that
    is not an integer is the schema checks' finding (None here)."""
    if not isinstance(created, int) or isinstance(created, bool):
        return None
    if created >= _SECONDS_BEFORE_5138:
        return (
            f"created {created} is not in seconds: read as milliseconds it is "
            f"{_iso(created / 1000)}, read as seconds year {_iso(created)[:4]}"
        )
    if abs(created - now) > CLOCK_SKEW:
        hours = (created - now) / 3600
        return (
            f"created {created} ({_iso(created)}) is {hours:+.1f} h from the client's clock "
            f"({_iso(now)})"
        )
    return None


@check(group="response", severity="must")
async def created_recent(ctx: Context) -> None:
    """created is the time of the answer, in Unix seconds, near the client's clock.
    The created of the run's basic answer and of its basic stream's first chunk is an integer
    number of seconds (not milliseconds) within 2 hours of the client's clock.

    Clients sort, cache and expire answers by created (the SDKs type it as Unix seconds); a
    created in milliseconds reads as a date thousands of years ahead, and a fixed or stale one
    (the model's date, a server clock that is off) orders answers wrongly."""
    for exchange, streamed in ((await ctx.completion(), False), (await ctx.stream(), True)):
        require_status(exchange, 200)
        if streamed:
            _, chunks = chunks_of(exchange)
            created, where = chunks[0].get("created"), "the first chunk's created"
        else:
            body = json_body(exchange)
            created = body.get("created") if isinstance(body, dict) else None
            where = "the answer's created"
        problem = created_problem(created, time.time())
        if problem:
            raise CheckFailed(
                f"{where} is not the time of the answer in seconds",
                expected=f"Unix seconds within {CLOCK_SKEW // 3600} h of the client's clock",
                received=problem,
                exchange=exchange,
            )


def _wrong_indices(chunks: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """(chunk position, index) of every streamed choice whose index is not 0."""
    wrong = []
    for position, chunk in enumerate(chunks):
        found = chunk.get("choices")
        for choice in found if isinstance(found, list) else []:
            index = choice.get("index") if isinstance(choice, dict) else None
            if index != 0:
                wrong.append((position, index))
    return wrong


def _index_failure(exchange: Exchange, wrong: list[tuple[int, Any]]) -> CheckFailed:
    counting = all(index == position for position, index in wrong)
    return CheckFailed(
        "a choice index is not 0 in a one-choice stream"
        + (": the index counts the chunks" if counting else ""),
        expected="index 0 in every chunk (the index names the choice, as n asked)",
        received=", ".join(f"chunk {p}: index {i!r}" for p, i in wrong[:8]),
        exchange=exchange,
    )


@check(group="stream", severity="must")
async def choice_index(ctx: Context) -> None:
    """A choice's index names the choice: 0 in every chunk and answer of a one-choice request.
    Every choice of the run's basic stream (each chunk) and of its basic answer has index 0.

    Clients route streamed deltas to choices[index] (the SDKs' stream accumulators, LangChain);
    an index that counts chunks or tokens makes each delta a new choice, so the text never
    joins."""
    stream = await ctx.stream()
    _, chunks = chunks_of(stream)
    wrong = _wrong_indices(chunks)
    if wrong:
        raise _index_failure(stream, wrong)
    answer = await ctx.completion()
    require_status(answer, 200)
    body = json_body(answer)
    found = body.get("choices") if isinstance(body, dict) else None
    indices = [c.get("index") if isinstance(c, dict) else None for c in found or []]
    if found and indices != [0]:
        raise CheckFailed(
            "the one-choice answer's choice index is not 0",
            expected="one choice with index 0",
            received=f"indices {indices}",
            exchange=answer,
        )


def _unnamed(document: Any, where: str) -> list[str]:
    """What of ``document``'s id and model is not a non-empty string, as "WHERE FIELD VALUE"."""
    if not isinstance(document, dict):
        return []
    return [
        f"{where} {field} {document.get(field)!r}"
        for field in ("id", "model")
        if not (isinstance(document.get(field), str) and document[field].strip())
    ]


@check(group="response", severity="must")
async def id_and_model_named(ctx: Context) -> None:
    """The answer and every chunk carry a non-empty id and a non-empty model.
    The run's basic answer and each chunk of its basic stream have an id and a model that are
    non-empty strings (the schemas accept "").

    Clients key answers and join stream chunks by id, and log, bill and route by model; TGI
    streamed id "" (huggingface/text-generation-inference#1782) and a vLLM version answered
    model "" (vllm-project/vllm#15938): both pass a schema and the same-id-in-every-chunk rule."""
    for exchange, streamed in ((await ctx.completion(), False), (await ctx.stream(), True)):
        require_status(exchange, 200)
        if streamed:
            _, chunks = chunks_of(exchange)
            found = [p for i, c in enumerate(chunks) for p in _unnamed(c, f"chunk {i}")]
        else:
            found = _unnamed(json_body(exchange), "the answer's")
        if found:
            raise CheckFailed(
                "an id or model is empty" + (" in the stream" if streamed else ""),
                expected="id and model: non-empty strings",
                received="; ".join(found[:4])
                + (f" (and {len(found) - 4} more)" if len(found) > 4 else ""),
                exchange=exchange,
            )
