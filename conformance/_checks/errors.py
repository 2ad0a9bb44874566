"""Error checks (catalogue group D): the envelope, and 4xx for what a client got wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from conformance._assertions import envelope_problem, json_body
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed
from conformance._registry import check

__all__ = ["BAD_REQUESTS", "BadRequest", "err_4xx_not_5xx", "err_envelope"]


@dataclass(frozen=True)
class BadRequest:
    name: str
    body: Any = None  # JSON body: a dict of overrides merged into a valid request, or a value
    merge: bool = True  # False: send ``body`` as it is
    raw: bytes | None = None  # sent as it is, instead of ``body``
    content_type: str = "application/json"
    accept: tuple[int, ...] = (400, 422)


_MISSING = object()

BAD_REQUESTS = (
    BadRequest("malformed JSON", raw=b'{"model": "m", "messages": [}'),
    BadRequest("body is a JSON array", body=[1, 2, 3], merge=False),
    BadRequest("messages missing", body={"messages": _MISSING}),
    BadRequest("messages null", body={"messages": None}),
    BadRequest("messages a string", body={"messages": "hello"}),
    BadRequest("messages [123]", body={"messages": [123]}),
    BadRequest("messages [{}]", body={"messages": [{}]}),
    BadRequest("role 123", body={"messages": [{"role": 123, "content": "hi"}]}),
    BadRequest(
        "text/plain body",
        raw=b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}',
        content_type="text/plain",
        accept=(400, 415, 422),
    ),
    BadRequest("temperature 3", body={"temperature": 3}),
    BadRequest("temperature a string", body={"temperature": "hot"}),
    BadRequest("top_p 1.5", body={"top_p": 1.5}),
    BadRequest("n 0", body={"n": 0}),
    BadRequest("max_tokens 0", body={"max_tokens": 0}),
    BadRequest("max_tokens -1", body={"max_tokens": -1}),
    BadRequest("seed beyond int64", body={"seed": 2**64}),
    BadRequest(
        "json_schema without a schema",
        body={"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
    ),
)


async def _send_bad(ctx: Context, case: BadRequest) -> Exchange:
    headers = {"Content-Type": case.content_type}
    if case.raw is not None:
        return await ctx.chat(raw=case.raw, headers=headers)
    body = case.body
    if case.merge:
        body = {k: v for k, v in ctx.request(**case.body).items() if v is not _MISSING}
    return await ctx.chat(body, headers=headers)


async def _bad_exchanges(ctx: Context) -> list[tuple[BadRequest, Exchange]]:
    """Each bad request with its answer, sent once per run whichever check asks first."""

    def sender(case: BadRequest) -> Callable[[], Awaitable[Exchange]]:
        return lambda: _send_bad(ctx, case)

    exchanges = await asyncio.gather(
        *(ctx.shared(f"bad:{case.name}", sender(case)) for case in BAD_REQUESTS)
    )
    return list(zip(BAD_REQUESTS, exchanges, strict=True))


@check(group="errors")
async def err_4xx_not_5xx(ctx: Context) -> None:
    """Malformed requests get 400 or 422: never 5xx (clients retry those), never 200."""
    failures = []
    worst: Exchange | None = None
    for case, exchange in await _bad_exchanges(ctx):
        if exchange.status not in case.accept:
            failures.append(f"{case.name} -> {exchange.status or exchange.error}")
            if worst is None or (exchange.status or 600) >= (worst.status or 600):
                worst = exchange
    if failures:
        raise CheckFailed(
            f"{len(failures)} of {len(BAD_REQUESTS)} invalid requests were not rejected with 4xx",
            expected="400 or 422 for each",
            received="; ".join(failures),
            exchange=worst,
        )


@check(group="errors")
async def err_envelope(ctx: Context) -> None:
    """Every error answer is {"error": {"message", "type", "param", "code"}} as JSON."""
    seen = 0
    for case, exchange in await _bad_exchanges(ctx):
        if exchange.status is None or exchange.status < 400:
            continue
        seen += 1
        body = json_body(exchange)
        error = envelope_problem(body) or ctx.validate("error", body)
        if error:
            raise CheckFailed(
                f"the error answer to '{case.name}' is not the OpenAI envelope",
                expected='{"error": {"message": str, "type": str, "param": str|null, '
                '"code": str|int|null}}',
                received=error,
                exchange=exchange,
            )
    if not seen:
        raise CheckFailed(
            "no invalid request got an error status, so no envelope was seen",
            expected="4xx answers carrying the envelope",
        )
