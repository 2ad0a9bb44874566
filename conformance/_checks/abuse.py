"""Abuse checks (group "errors"): after malformed requests, a refused request and a client that
leaves in the middle of a stream, the server still answers, and as quickly as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable

import aiohttp

from conformance._assertions import chunks_of, require_choices
from conformance._checks.errors import bad_exchanges, count_sent
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = ["quick_after_abuse", "survives_abuse"]

_ABUSER = "chatcompat-survives-abuse"  # the user the abusive requests come from
_QUICK_FLOOR = 10.0  # seconds an answer after the abuse may always take
_QUICK_FACTOR = 5  # ... or this many times the same kind of answer before it


async def _abandoned_stream(ctx: Context) -> None:
    """A stream request whose client reads the first bytes and leaves."""
    count_sent(ctx)
    endpoint = ctx.endpoint
    body = json.dumps(ctx.request(stream=True, user=_ABUSER)).encode()
    headers = {**endpoint.headers(), "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
    try:
        async with ctx.session.post(
            endpoint.url("/chat/completions"), data=body, headers=headers, timeout=timeout
        ) as response:
            await response.content.readany()
            response.close()  # drops the connection mid-answer
    except (aiohttp.ClientError, TimeoutError):
        pass


async def _abuse(ctx: Context) -> Exchange:
    """The abuse, once per run whichever check asks first: the malformed requests and a request
    without messages from one user, then a stream of that user left after its first bytes. The
    refused request's exchange."""

    async def abuse() -> Exchange:
        _, refused = await asyncio.gather(
            bad_exchanges(ctx), ctx.chat(ctx.request(messages=None, user=_ABUSER))
        )
        await _abandoned_stream(ctx)
        return refused

    return await ctx.shared("errors:abuse", abuse)


def _after_abuse(ctx: Context, *, stream: bool) -> Awaitable[Exchange]:
    """A valid request of the abusive user (a stream, or not) sent after the abuse, once per
    run whichever check asks first."""

    async def after() -> Exchange:
        await _abuse(ctx)
        overrides = {"stream": True} if stream else {}
        return await ctx.chat(ctx.request(user=_ABUSER, max_tokens=16, **overrides))

    return ctx.shared(f"errors:after-abuse:{'stream' if stream else 'json'}", after)


def _answered(exchange: Exchange, *, stream: bool) -> bool:
    """Whether ``exchange`` holds a whole answer: a chat completion with choices, or a stream of
    JSON chunks, with status 200."""
    if exchange.status != 200 or exchange.error:
        return False
    try:
        if stream:
            return bool(chunks_of(exchange)[1])
        body = exchange.json()
    except (CheckFailed, ValueError):
        return False
    return isinstance(body, dict) and bool(body.get("choices"))


def _quick(before: Exchange) -> float:
    """Seconds an answer after the abuse may take: 5 x the time of ``before`` (the same kind
    of request before the abuse), 10 s at least."""
    return max(_QUICK_FLOOR, _QUICK_FACTOR * before.elapsed)


@check(group="errors", severity="must")
async def survives_abuse(ctx: Context) -> None:
    """After bad requests and a client leaving mid-stream, a valid request succeeds.
    After the malformed requests, a refused request and a stream its client leaves after the
    first bytes (all from one user), a valid request of that user gets 200 with choices.

    A server that leaks a slot, a lock or a per-user state on a bad request or a dropped
    connection fails the requests after it; clients drop connections all the time (a closed
    tab, a timeout, a cancelled generation)."""
    await ctx.completion()  # the run's first answer, before the abuse
    exchange = await _after_abuse(ctx, stream=False)
    if exchange.status != 200 or exchange.error:
        raise CheckFailed(
            "a valid request after bad ones and an abandoned stream failed",
            expected="200",
            received=str(exchange.error or exchange.status),
            exchange=exchange,
        )
    require_choices("the answer after the abuse has no choice", exchange)


@check(group="errors", severity="should")
async def quick_after_abuse(ctx: Context) -> None:
    """After bad requests and a client leaving mid-stream, valid requests are answered quickly.
    After the same abuse as survives_abuse, a valid request of that user and a valid stream of
    that user each come whole within 5 x the time of the run's first answer of the same kind
    (10 s at least); one that times out is slow too.

    Servers that go on generating for a client that left, or keep its slot, answer the next
    requests late; they still succeed, so this is a recommendation. A request refused or broken
    after the abuse is survives_abuse's business (inconclusive here)."""
    befores = await asyncio.gather(ctx.completion(), ctx.stream())  # before the abuse
    afters = await asyncio.gather(_after_abuse(ctx, stream=False), _after_abuse(ctx, stream=True))
    judged = 0
    for stream, before, after in zip((False, True), befores, afters, strict=True):
        if not after.timed_out and not _answered(after, stream=stream):
            continue  # no answer came: survives_abuse's business
        kind = "stream" if stream else "request"
        judged += 1
        quick = _quick(before)
        if after.timed_out or after.elapsed > quick:
            raise CheckFailed(
                f"a valid {kind} after the abuse was slow",
                expected=f"the whole answer within {quick:.1f} s (5 x the first {kind}'s time, "
                f"{_QUICK_FLOOR:.0f} s at least)",
                received=after.error or f"{after.elapsed:.1f} s",
                exchange=after,
            )
    if not judged:
        raise CheckSkipped(
            "inconclusive: no valid request came after the abuse (survives_abuse reports it)"
        )
