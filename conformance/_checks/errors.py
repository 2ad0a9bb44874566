"""Error checks (group "errors"): malformed requests get a 4xx in the error envelope, before a
stream and within one, without the server's internals. Refusals of valid-looking requests are in
conformance._checks.refusals; a server that survives abuse in conformance._checks.abuse."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from conformance._assertions import envelope_problem, json_body, require_status
from conformance._context import CHECK_SPEND, Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check
from conformance._sse import parse_events

__all__ = [
    "BAD_REQUESTS",
    "FAULT_HEADER",
    "BadRequest",
    "bad_body",
    "bad_exchanges",
    "count_sent",
    "err_4xx_not_5xx",
    "err_envelope",
    "err_midstream",
    "no_leak_internals",
]


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


def bad_body(ctx: Context, case: BadRequest, **overrides: Any) -> Any:
    """The JSON body of ``case``: its overrides (and ``overrides``) merged into a valid request,
    the keys it leaves out left out; its value as it is when it does not merge."""
    if not case.merge:
        return case.body
    merged = ctx.request(**case.body, **overrides)
    return {k: v for k, v in merged.items() if v is not _MISSING}


async def _send_bad(ctx: Context, case: BadRequest) -> Exchange:
    headers = {"Content-Type": case.content_type}
    if case.raw is not None:
        return await ctx.chat(raw=case.raw, headers=headers)
    return await ctx.chat(bad_body(ctx, case), headers=headers)


async def bad_exchanges(ctx: Context) -> list[tuple[BadRequest, Exchange]]:
    """Each of BAD_REQUESTS with its answer, sent once per run whichever check asks first."""

    def sender(case: BadRequest) -> Callable[[], Awaitable[Exchange]]:
        return lambda: _send_bad(ctx, case)

    exchanges = await asyncio.gather(
        *(ctx.shared(f"bad:{case.name}", sender(case)) for case in BAD_REQUESTS)
    )
    return list(zip(BAD_REQUESTS, exchanges, strict=True))


def count_sent(ctx: Context) -> None:
    """Count one request sent past ctx.send in the run's budget and the check's spend; skip the
    check when the budget is spent."""
    if ctx.budget.requests >= ctx.budget.max_requests:
        raise CheckSkipped(f"the run's budget of {ctx.budget.max_requests} requests is spent")
    ctx.budget.requests += 1
    spend = CHECK_SPEND.get()
    if spend is not None:
        spend.requests += 1


@check(group="errors", severity="must")
async def err_4xx_not_5xx(ctx: Context) -> None:
    """Malformed requests get 400 or 422, never 5xx or 200.
    17 malformed requests each get 400 or 422 (a text/plain body 415 too): malformed JSON, a JSON
    array as the body, messages missing, null, a string, [123] or [{}], role 123, a text/plain
    body, temperature 3 or a string, top_p 1.5, n 0, max_tokens 0 or -1, a seed beyond int64,
    json_schema without a schema.

    Clients retry a 5xx (the OpenAI SDKs twice, with backoff), so a client's mistake answered 500
    is sent again, and a 200 hides the mistake."""
    failures = []
    worst: Exchange | None = None
    for case, exchange in await bad_exchanges(ctx):
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


@check(group="errors", severity="must")
async def err_envelope(ctx: Context) -> None:
    """Every error answer is the OpenAI error envelope, as JSON.
    Each error answer to the malformed requests is {"error": {"message": str, "type": str,
    "param": str|null, "code": str|int|null}}.

    The official SDKs read error.message, error.type and error.code to raise their typed errors;
    FastAPI's {"detail": ...} or a plain-text body reaches the user as an opaque failure."""
    seen = 0
    for case, exchange in await bad_exchanges(ctx):
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


FAULT_HEADER = "X-Chatcompat-Fault"  # the chatcompat mock's fault injection (capability faults)


@check(group="errors", severity="must", capability="faults")
async def err_midstream(ctx: Context) -> None:
    """An error after a stream started is a data: {"error": ...} event, then data: [DONE].
    With X-Chatcompat-Fault: error-after=2 the stream carries the error envelope as a data event,
    then data: [DONE], on a connection that closes cleanly.

    Once a 200 is sent the status cannot change; the SDKs raise the envelope of a data event as an
    APIError, while a cut connection looks like a network failure."""
    exchange = await ctx.chat(ctx.request(stream=True), headers={FAULT_HEADER: "error-after=2"})
    require_status(exchange, 200)
    events, problems = parse_events(exchange.body)
    if exchange.error or problems:
        raise CheckFailed(
            "the stream broke off instead of reporting the error",
            expected='data: {"error": {...}} then data: [DONE]',
            received=exchange.error or "; ".join(problems),
            exchange=exchange,
        )
    errors = [e for e in events if e.data.startswith("{") and '"error"' in e.data]
    if not events or events[-1].data != "[DONE]" or not errors:
        last = events[-1].data[:200] if events else "(no event)"
        raise CheckFailed(
            "the mid-stream error was not reported as an error event closed by [DONE]",
            expected='data: {"error": {...}} then data: [DONE]',
            received=f"{len(errors)} error events; last event: {last}",
            exchange=exchange,
        )
    error = envelope_problem(json.loads(errors[-1].data))
    if error:
        raise CheckFailed(
            "the mid-stream error event is not the error envelope",
            received=error,
            exchange=exchange,
        )


_INTERNALS = re.compile(
    r"Traceback \(most recent call last\)"
    r'|File "[^"]+", line \d+'
    r"|\bat [\w.$<>]+\([\w.]+:\d+\)"  # Java / JS stack frames
    r"|site-packages/|dist-packages/|node_modules/"
    r"|(?:/usr/(?:local/)?lib|/home|/opt|/root|/app|/srv)/[\w.-]+/"
    r"|\b[A-Z]:\\\\\w"
)


@check(group="errors", severity="should")
async def no_leak_internals(ctx: Context) -> None:
    """Error answers carry no stack traces and no server file paths.
    The answers to the malformed requests show no stack trace (Python, Java, JavaScript) and no
    file path of the server.

    A trace tells an attacker the stack and its versions, and tells the client nothing it can act
    on (OWASP's improper error handling)."""
    refused = 0
    for case, exchange in await bad_exchanges(ctx):
        if exchange.status is None or exchange.status < 400:
            continue
        refused += exchange.status < 500
        found = _INTERNALS.search(exchange.body.decode("utf-8", "replace"))
        if found:
            raise CheckFailed(
                f"the error answer to '{case.name}' shows the server's internals",
                expected="a message for the client, without traces or paths",
                received=found.group(0)[:200],
                exchange=exchange,
            )
    if not refused:
        raise CheckSkipped("inconclusive: no invalid request got a 4xx answer to look at")
