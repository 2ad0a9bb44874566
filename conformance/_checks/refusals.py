"""Refusal checks (group "errors"): requests that look valid but cannot be served are refused
the way clients expect: a prompt over the context, a missing or wrong key, an unknown model, a
rate limit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from conformance._assertions import (
    ANSWERED,
    envelope_problem,
    json_body,
    require_choices,
    require_status_in,
)
from conformance._checks.errors import FAULT_HEADER, count_sent
from conformance._context import Context
from conformance._http import Endpoint, Exchange, send
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = [
    "err_429_503",
    "err_auth",
    "err_context_length",
    "err_context_length_code",
    "err_model_404",
    "err_unknown_model_not_5xx",
    "send_as",
    "too_long",
    "too_long_request",
    "unknown_model",
    "unknown_model_request",
]


def _error_code(exchange: Exchange) -> Any:
    try:
        body = exchange.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


async def too_long(ctx: Context) -> Exchange:
    """The answer to a request whose prompt alone is longer than the context (every word is at
    least one token), sent once per run; skips when the context length is not known."""
    context_length = ctx.endpoint.context_length
    if context_length is None:
        raise CheckSkipped(
            "inconclusive: the context length is not known (--context-length or a profile)"
        )
    body = too_long_request(ctx, context_length)
    return await ctx.shared("errors:too-long", lambda: ctx.chat(body))


def too_long_request(ctx: Context, context_length: int, **overrides: Any) -> dict[str, Any]:
    """A request whose prompt alone is longer than ``context_length`` tokens (every word is at
    least one token), with ``overrides``."""
    content = " a" * (context_length + 256)
    return ctx.request(messages=[{"role": "user", "content": content}], max_tokens=16, **overrides)


@check(group="errors", severity="must")
async def err_context_length(ctx: Context) -> None:
    """A prompt longer than the context is refused with a 4xx, never 5xx or 200.
    A prompt longer than the known context length (--context-length or the profile's; else
    skipped) gets 400, 413 or 422.

    Clients that trim a long conversation retry a 4xx with a shorter prompt; a 5xx is retried as
    it is and fails again, and a 200 means the prompt was cut without a word."""
    require_status_in(
        "a prompt longer than the context was not refused with a 4xx",
        await too_long(ctx),
        (400, 413, 422),
        expected="400 context_length_exceeded (413 or 422 accepted)",
    )


@check(group="errors", severity="should")
async def err_context_length_code(ctx: Context) -> None:
    """A prompt longer than the context gets 400 with code context_length_exceeded.
    The refusal of that prompt is status 400 whose error.code is "context_length_exceeded", as
    OpenAI answers.

    Clients that trim the history and try again tell this refusal from other 400s by its code;
    vLLM and llama.cpp refuse with other codes, which is allowed but not advised."""
    exchange = await too_long(ctx)
    code = _error_code(exchange)
    if exchange.status != 400 or code != "context_length_exceeded":
        raise CheckFailed(
            "a prompt longer than the context was not refused as OpenAI refuses it",
            expected='400 with code "context_length_exceeded"',
            received=f"{exchange.status} with code {code!r}",
            exchange=exchange,
        )


async def send_as(
    ctx: Context, endpoint: Endpoint, body: Any, headers: dict[str, str] | None = None
) -> Exchange:
    """A chat request sent as ``endpoint`` (another key, or none)."""
    count_sent(ctx)
    return await send(
        ctx.session, endpoint, "POST", "/chat/completions", body=body, headers=headers
    )


@check(group="errors", severity="must", capability="auth")
async def err_auth(ctx: Context) -> None:
    """A request without the bearer key, or with a wrong one, gets 401 in the envelope.
    With capability auth and a key given, a request without an Authorization header and one
    with a wrong key each get 401 with the error envelope.

    An endpoint that answers without its key serves, and bills, anyone who finds its URL."""
    if not ctx.endpoint.api_key:
        raise CheckSkipped("no API key is given, so its absence cannot be tested")
    body = ctx.request(max_tokens=8)
    anonymous = replace(ctx.endpoint, api_key=None)
    wrong_key = {"Authorization": "Bearer sk-chatcompat-wrong-key"}
    missing, wrong = await asyncio.gather(
        send_as(ctx, anonymous, body),
        send_as(ctx, anonymous, body, headers=wrong_key),
    )
    for what, exchange in (("no key", missing), ("a wrong key", wrong)):
        require_status_in(
            f"a request with {what} was not refused with 401", exchange, (401,), expected="401"
        )
        error = envelope_problem(json_body(exchange))
        if error:
            raise CheckFailed(
                f"the 401 for {what} is not the error envelope", received=error, exchange=exchange
            )


def unknown_model_request(ctx: Context, **overrides: Any) -> dict[str, Any]:
    """A request for a model the endpoint does not serve (a fresh name), with ``overrides``."""
    model = f"chatcompat-no-such-model-{uuid.uuid4().hex[:8]}"
    return ctx.request(model=model, max_tokens=8, **overrides)


def unknown_model(ctx: Context) -> Awaitable[Exchange]:
    """The answer to a chat request for a model the endpoint does not serve, sent once per run."""
    body = unknown_model_request(ctx)
    return ctx.shared("errors:unknown-model", lambda: ctx.chat(body))


@check(group="errors", severity="must")
async def err_unknown_model_not_5xx(ctx: Context) -> None:
    """A chat request for an unknown model never gets 5xx.
    A request naming a model the endpoint does not serve gets a whole answer below 500: 404 as
    OpenAI answers, another 4xx, or a 200 chat completion from a server that answers any name.

    Clients retry a 5xx as the server's trouble: a typo in a model name then costs retries and
    reads as an outage."""
    exchange = await unknown_model(ctx)
    require_status_in(
        "a request for an unknown model broke the server",
        exchange,
        ANSWERED,
        expected="404 (or another answer below 500)",
    )
    if exchange.error:
        raise CheckFailed(
            "the answer to a request for an unknown model did not end cleanly",
            received=exchange.error,
            exchange=exchange,
        )
    if exchange.status == 200:  # a server that answers any name: then it is an answer
        require_choices("a request for an unknown model got 200, but no chat completion", exchange)


@check(group="errors", severity="should")
async def err_model_404(ctx: Context) -> None:
    """A chat request for an unknown model gets 404.
    A request naming a model the endpoint does not serve gets 404 (OpenAI's code
    model_not_found).

    Single-model servers (llama.cpp) answer any model name with their one model: allowed, not
    advised, since a typo then reaches a model the client did not ask for."""
    require_status_in(
        "a request for an unknown model did not get 404",
        await unknown_model(ctx),
        (404,),
        expected="404 model_not_found",
    )


@check(group="errors", severity="must", capability="ratelimit")
async def err_429_503(ctx: Context) -> None:
    """Rate limiting is 429 with Retry-After, overload is 503, both in the envelope.
    With capability ratelimit, X-Chatcompat-Fault: status=429 gets 429 with Retry-After (or
    retry-after-ms) and status=503 gets 503, each with the error envelope; skipped when the
    header provokes neither.

    The SDKs back off on 429 and 503 as long as Retry-After asks; a rate limit answered 500 is
    retried sooner, which adds to the load."""
    limited, overloaded = await asyncio.gather(
        ctx.chat(ctx.request(), headers={FAULT_HEADER: "status=429"}, retry_429=False),
        ctx.chat(ctx.request(), headers={FAULT_HEADER: "status=503"}),
    )
    if limited.status == 200 and overloaded.status == 200:
        raise CheckSkipped(f"inconclusive: the {FAULT_HEADER} header provoked neither 429 nor 503")
    for status, exchange in ((429, limited), (503, overloaded)):
        require_status_in(
            f"the provoked {status} was answered otherwise", exchange, (status,), str(status)
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
