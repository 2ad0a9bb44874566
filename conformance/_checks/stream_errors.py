"""Errors on the streaming path (group "errors"): every error the suite provokes without a
stream (invalid messages, out-of-range parameters, too many stops, a prompt over the context, an
unknown model, a missing key) is provoked again with stream: true, and must be refused the same
way, as a 4xx JSON error before any stream starts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from conformance._assertions import envelope_problem
from conformance._checks.errors import BAD_REQUESTS, BadRequest, bad_body, bad_exchanges
from conformance._checks.parameters import FIVE_STOPS, five_stops
from conformance._checks.refusals import (
    send_as,
    too_long,
    too_long_request,
    unknown_model,
    unknown_model_request,
)
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check
from conformance._sse import parse_events

__all__ = ["err_stream_prestart", "stream_refusal_seen"]

_CLIENT_ERRORS = range(400, 500)
# Sent streamed whatever the same request without a stream got, as before this check covered
# every error; the other cases only when refused without a stream (vLLM, for one, takes
# temperature 3: it has no upper bound; llama-cpp-python takes max_tokens 0 as "no limit").
_ALWAYS = ("messages [123]", "max_tokens 0")


@dataclass(frozen=True)
class _Case:
    """One error provoked on the streaming path: its name, the statuses that refuse it, and the
    stream request's exchange (None: not sent, as the request without a stream was answered)."""

    name: str
    accept: range | tuple[int, ...]
    exchange: Exchange | None


def stream_refusal_seen(exchange: Exchange) -> str:
    """What came instead of a 4xx JSON error, said in one line: the status and content type,
    and for a 200 event stream the ``error:`` line or the data error event it carries."""
    if exchange.status is None:
        return f"no answer: {exchange.error}"
    seen = f"{exchange.status} {exchange.content_type}"
    if "event-stream" not in exchange.content_type:
        return seen
    lines = exchange.body.decode("utf-8", "replace").splitlines()
    line = next((x for x in lines if x.startswith("error:")), None)
    if line is not None:
        return f"{seen} holding an error: line (no event-stream client reads it): {line[:160]}"
    events, _ = parse_events(exchange.body)
    errors = [e.data for e in events if e.data.startswith("{") and '"error"' in e.data]
    if errors:
        return f"{seen} holding a data error event: {errors[0][:160]}"
    return f"{seen} of {len(events)} events, none an error"


async def _when_refused(
    plain: Awaitable[Exchange], send: Callable[[], Awaitable[Exchange]]
) -> Exchange | None:
    """The stream request ``send`` makes when the same request without a stream (``plain``)
    was refused with a 4xx; None when it was answered, or when it is not known."""
    try:
        exchange = await plain
    except CheckSkipped:
        return None
    return await send() if exchange.status in _CLIENT_ERRORS else None


async def _bad_cases(ctx: Context) -> list[_Case]:
    """The malformed requests of errors.BAD_REQUESTS that are a valid request with overrides,
    streamed: the ``_ALWAYS`` ones always, the others when refused without a stream."""
    plain = {case.name: exchange for case, exchange in await bad_exchanges(ctx)}
    cases = [c for c in BAD_REQUESTS if c.merge and c.raw is None and isinstance(c.body, dict)]

    async def one(case: BadRequest) -> Exchange | None:
        if case.name in _ALWAYS or plain[case.name].status in case.accept:
            return await ctx.chat(bad_body(ctx, case, stream=True))
        return None

    exchanges = await asyncio.gather(*(one(case) for case in cases))
    return [_Case(c.name, c.accept, e) for c, e in zip(cases, exchanges, strict=True)]


async def _refusal_cases(ctx: Context) -> list[_Case]:
    """The refusals of valid-looking requests, streamed when refused without a stream: five
    stop strings, a prompt over the context, an unknown model, and (capability auth, a key
    given) a wrong key."""
    stops = ctx.request(stop=FIVE_STOPS, max_tokens=8, stream=True)
    model = unknown_model_request(ctx, stream=True)
    sends: list[tuple[str, Awaitable[Exchange], Callable[[], Awaitable[Exchange]]]] = [
        ("five stop strings", five_stops(ctx), lambda: ctx.chat(stops)),
        ("an unknown model", unknown_model(ctx), lambda: ctx.chat(model)),
    ]
    context = ctx.endpoint.context_length
    if context is not None:
        long = too_long_request(ctx, context, stream=True)
        sends.append(("a prompt over the context", too_long(ctx), lambda: ctx.chat(long)))
    if "auth" in ctx.endpoint.capabilities and ctx.endpoint.api_key:
        anonymous = replace(ctx.endpoint, api_key=None)
        wrong = {"Authorization": "Bearer sk-chatcompat-wrong-key"}
        body = ctx.request(max_tokens=8, stream=True)
        sends.append(
            (
                "a wrong key",
                send_as(ctx, anonymous, ctx.request(max_tokens=8), headers=wrong),
                lambda: send_as(ctx, anonymous, body, headers=wrong),
            )
        )
    exchanges = await asyncio.gather(*(_when_refused(p, s) for _, p, s in sends))
    return [_Case(n, _CLIENT_ERRORS, e) for (n, _, _), e in zip(sends, exchanges, strict=True)]


@check(group="errors", severity="must")
async def err_stream_prestart(ctx: Context) -> None:
    """A stream request the server refuses gets a 4xx JSON error, not a 200 stream.
    Every error the suite provokes without a stream is provoked with stream: true too: messages
    [123] and max_tokens 0 always get 400 (or 422), and the other malformed requests, five stop
    strings, a prompt over the context, an unknown model and a wrong key (capability auth) get
    a 4xx when they get one without a stream; each with the error envelope as a JSON body.

    A client that asked for a stream learns of a 4xx before any event (the SDKs raise
    BadRequestError); a 200 stream holding only an error event, or an error: line no
    event-stream parser reads, is a server failure or an empty answer, not the client's mistake."""
    bad, refusals = await asyncio.gather(_bad_cases(ctx), _refusal_cases(ctx))
    cases = [*bad, *refusals]
    failures: list[tuple[str, Exchange]] = []
    for case in cases:
        exchange = case.exchange
        if exchange is None:
            continue
        if exchange.status not in case.accept:
            failures.append((f"{case.name} -> {stream_refusal_seen(exchange)}", exchange))
            continue
        error = envelope_problem(_json_or_none(exchange))
        if error:
            failures.append((f"{case.name} -> {exchange.status} but {error}", exchange))
    if failures:
        sent = sum(case.exchange is not None for case in cases)
        raise CheckFailed(
            f"{len(failures)} of {sent} stream requests that must be refused were not refused "
            f"before the stream: {failures[0][0][:200]}",
            expected="a 4xx (400 for the malformed) with the error envelope as a JSON body",
            received="; ".join(what for what, _ in failures),
            exchange=failures[0][1],
        )


def _json_or_none(exchange: Exchange) -> Any:
    try:
        return exchange.json()
    except ValueError:
        return None
