"""Error checks (group "errors"): the envelope, 4xx for what a client got wrong, errors in
streams, auth, unknown models, rate limits, and a server that survives abuse."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from conformance._assertions import envelope_problem, json_body, require_refused, require_status
from conformance._context import CHECK_SPEND, Context
from conformance._http import Endpoint, Exchange, send
from conformance._outcome import CheckFailed, CheckSkipped, CheckWarning
from conformance._registry import check
from conformance._sse import parse_events

__all__ = [
    "BAD_REQUESTS",
    "BadRequest",
    "err_4xx_not_5xx",
    "err_429_503",
    "err_auth",
    "err_context_length",
    "err_envelope",
    "err_midstream",
    "err_model_404",
    "err_stream_prestart",
    "no_leak_internals",
    "survives_abuse",
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


# Errors beyond the envelope: before and in a stream, context length, auth, unknown models,
# rate limits, surviving abuse; and internals that must not leak.

_FAULT_HEADER = "X-Chatcompat-Fault"  # the chatcompat mock's fault injection (capability faults)
# Refused by every server (vLLM, for one, takes temperature 3: it has no upper bound).
_STREAM_BAD = (("messages [123]", {"messages": [123]}), ("max_tokens 0", {"max_tokens": 0}))


def _error_code(exchange: Exchange) -> Any:
    try:
        body = exchange.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


@check(group="errors")
async def err_stream_prestart(ctx: Context) -> None:
    """A stream request that fails validation gets a 4xx JSON error, not a 200 stream."""
    exchanges = await asyncio.gather(
        *(ctx.chat(ctx.request(stream=True, **bad)) for _, bad in _STREAM_BAD)
    )
    for (name, _), exchange in zip(_STREAM_BAD, exchanges, strict=True):
        require_refused(
            f"a stream request with {name}", exchange, expected="400 with a JSON error body"
        )
        error = envelope_problem(json_body(exchange))
        if error:
            raise CheckFailed(
                f"the refusal of a stream request with {name} is not the error envelope",
                received=error,
                exchange=exchange,
            )


@check(group="errors", capability="faults")
async def err_midstream(ctx: Context) -> None:
    """An error after a stream started is a data: {"error": ...} event, then data: [DONE]."""
    exchange = await ctx.chat(ctx.request(stream=True), headers={_FAULT_HEADER: "error-after=2"})
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


def _too_long(ctx: Context, context_length: int) -> dict[str, Any]:
    """A request whose prompt alone is longer than the context: every word is >= 1 token."""
    words = context_length + 256
    return ctx.request(messages=[{"role": "user", "content": " a" * words}], max_tokens=16)


@check(group="errors")
async def err_context_length(ctx: Context) -> None:
    """A prompt longer than the context gets 400 (code context_length_exceeded), not 500."""
    context_length = ctx.endpoint.context_length
    if context_length is None:
        raise CheckSkipped(
            "inconclusive: the context length is not known (--context-length or a profile)"
        )
    exchange = await ctx.chat(_too_long(ctx, context_length))
    if exchange.status not in (400, 413, 422):
        raise CheckFailed(
            "a prompt longer than the context was not refused with 400",
            expected="400 context_length_exceeded",
            received=str(exchange.status or exchange.error),
            exchange=exchange,
        )
    code = _error_code(exchange)
    if exchange.status != 400 or code != "context_length_exceeded":
        raise CheckWarning(
            "a prompt longer than the context was refused, but not as OpenAI does",
            expected='400 with code "context_length_exceeded"',
            received=f"{exchange.status} with code {code!r}",
            exchange=exchange,
        )


def _count(ctx: Context) -> None:
    """Count one request sent past ctx.send in the run's budget and the check's spend."""
    if ctx.budget.requests >= ctx.budget.max_requests:
        raise CheckSkipped(f"the run's budget of {ctx.budget.max_requests} requests is spent")
    ctx.budget.requests += 1
    spend = CHECK_SPEND.get()
    if spend is not None:
        spend.requests += 1


async def _send_as(
    ctx: Context, endpoint: Endpoint, body: Any, headers: dict[str, str] | None = None
) -> Exchange:
    """A chat request sent as ``endpoint`` (another key, or none)."""
    _count(ctx)
    return await send(
        ctx.session, endpoint, "POST", "/chat/completions", body=body, headers=headers
    )


@check(group="errors", capability="auth")
async def err_auth(ctx: Context) -> None:
    """A request without the bearer key, or with a wrong one, gets 401 in the envelope."""
    if not ctx.endpoint.api_key:
        raise CheckSkipped("no API key is given, so its absence cannot be tested")
    body = ctx.request(max_tokens=8)
    anonymous = replace(ctx.endpoint, api_key=None)
    wrong_key = {"Authorization": "Bearer sk-chatcompat-wrong-key"}
    missing, wrong = await asyncio.gather(
        _send_as(ctx, anonymous, body),
        _send_as(ctx, anonymous, body, headers=wrong_key),
    )
    for what, exchange in (("no key", missing), ("a wrong key", wrong)):
        if exchange.status != 401:
            raise CheckFailed(
                f"a request with {what} was not refused with 401",
                expected="401",
                received=str(exchange.status or exchange.error),
                exchange=exchange,
            )
        error = envelope_problem(json_body(exchange))
        if error:
            raise CheckFailed(
                f"the 401 for {what} is not the error envelope", received=error, exchange=exchange
            )


@check(group="errors")
async def err_model_404(ctx: Context) -> None:
    """A chat request for a model the endpoint does not serve gets 404."""
    model = f"chatcompat-no-such-model-{uuid.uuid4().hex[:8]}"
    exchange = await ctx.chat(ctx.request(model=model, max_tokens=8))
    if exchange.status == 404:
        return
    if exchange.status is None or exchange.status >= 500:
        raise CheckFailed(
            "a request for an unknown model broke the server",
            expected="404",
            received=str(exchange.status or exchange.error),
            exchange=exchange,
        )
    # Single-model servers (llama.cpp) answer whatever the model name: allowed, not advised.
    raise CheckWarning(
        "a request for an unknown model did not get 404",
        expected="404 model_not_found",
        received=str(exchange.status),
        exchange=exchange,
    )


@check(group="errors", capability="ratelimit")
async def err_429_503(ctx: Context) -> None:
    """Rate limiting is 429 with Retry-After, overload is 503, both in the envelope."""
    limited, overloaded = await asyncio.gather(
        ctx.chat(ctx.request(), headers={_FAULT_HEADER: "status=429"}, retry_429=False),
        ctx.chat(ctx.request(), headers={_FAULT_HEADER: "status=503"}),
    )
    if limited.status == 200 and overloaded.status == 200:
        raise CheckSkipped(f"inconclusive: the {_FAULT_HEADER} header provoked neither 429 nor 503")
    for status, exchange in ((429, limited), (503, overloaded)):
        if exchange.status != status:
            raise CheckFailed(
                f"the provoked {status} was answered otherwise",
                expected=str(status),
                received=str(exchange.status or exchange.error),
                exchange=exchange,
            )
        error = envelope_problem(json_body(exchange))
        if error:
            raise CheckFailed(
                f"the {status} is not the error envelope", received=error, exchange=exchange
            )
    if "retry-after" not in limited.headers and "retry-after-ms" not in limited.headers:
        raise CheckFailed(
            "the 429 does not say when to retry",
            expected="a Retry-After header",
            received=", ".join(sorted(limited.headers)),
            exchange=limited,
        )


_ABUSER = "chatcompat-survives-abuse"  # the user the abusive requests come from


async def _abandoned_stream(ctx: Context) -> None:
    """A stream request whose client reads the first bytes and leaves."""
    _count(ctx)
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


@check(group="errors")
async def survives_abuse(ctx: Context) -> None:
    """After bad requests and a client leaving mid-stream, a valid request succeeds quickly."""
    baseline = await ctx.completion()
    await asyncio.gather(_bad_exchanges(ctx), ctx.chat(ctx.request(messages=None, user=_ABUSER)))
    await _abandoned_stream(ctx)
    exchange = await ctx.chat(ctx.request(user=_ABUSER, max_tokens=16))
    if exchange.status != 200 or exchange.error:
        raise CheckFailed(
            "a valid request after bad ones and an abandoned stream failed",
            expected="200",
            received=str(exchange.error or exchange.status),
            exchange=exchange,
        )
    choices = json_body(exchange).get("choices")
    if not isinstance(choices, list) or not choices:
        raise CheckFailed(
            "the answer after the abuse has no choice",
            expected="a chat.completion with choices",
            received=exchange.body.decode("utf-8", "replace")[:200],
            exchange=exchange,
        )
    quick = max(10.0, 5 * baseline.elapsed)
    if exchange.elapsed > quick:
        raise CheckWarning(
            "a valid request after the abuse was slow",
            expected=f"an answer within {quick:.1f} s (5 x the first answer's time)",
            received=f"{exchange.elapsed:.1f} s",
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
    """Error answers carry no stack traces and no server file paths."""
    refused = 0
    for case, exchange in await _bad_exchanges(ctx):
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
