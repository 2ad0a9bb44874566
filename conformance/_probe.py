"""What an endpoint says about itself: ``--probe`` finds out what it supports with a few small
requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp

from conformance._context import WEATHER_TOOL, Budget, Context
from conformance._http import Endpoint, Exchange

__all__ = ["PROBED", "Finding", "probe"]


@dataclass(frozen=True)
class Finding:
    capability: str
    found: bool
    evidence: str  # what was seen, in a few words


def _choices(exchange: Exchange) -> list[dict[str, Any]]:
    if exchange.status != 200:
        return []
    try:
        choices = json.loads(exchange.body).get("choices")
    except (ValueError, AttributeError):
        return []
    return choices if isinstance(choices, list) else []


def _seen(exchange: Exchange) -> str:
    return f"status {exchange.status or exchange.error}"


async def _tools(ctx: Context) -> Finding:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    exchange = await ctx.chat(
        ctx.request(messages=messages, tools=[WEATHER_TOOL], tool_choice="required", max_tokens=64)
    )
    calls = [(c.get("message") or {}).get("tool_calls") for c in _choices(exchange)]
    return Finding(
        "tools",
        bool(calls and calls[0]),
        f"{_seen(exchange)}, tool_calls: {'yes' if calls and calls[0] else 'no'}",
    )


async def _logprobs(ctx: Context) -> Finding:
    exchange = await ctx.chat(ctx.request(logprobs=True, top_logprobs=2, max_tokens=2))
    choices = _choices(exchange)
    content = ((choices[0].get("logprobs") or {}).get("content") if choices else None) or []
    return Finding("logprobs", bool(content), f"{_seen(exchange)}, {len(content)} entries")


async def _n(ctx: Context) -> Finding:
    exchange = await ctx.chat(ctx.request(n=2, max_tokens=2, temperature=1.0))
    count = len(_choices(exchange))
    return Finding("n", count == 2, f"{_seen(exchange)}, {count} choices for n=2")


async def _json(ctx: Context) -> Finding:
    messages = [{"role": "user", "content": "Reply with a JSON object with a key 'a'."}]
    exchange = await ctx.chat(
        ctx.request(messages=messages, max_tokens=32, response_format={"type": "json_object"})
    )
    return Finding("json", exchange.status == 200, _seen(exchange))


async def _ext(ctx: Context) -> Finding:
    exchange = await ctx.chat(ctx.request(max_tokens=2, top_k=1, min_p=0.1, repetition_penalty=1.1))
    return Finding(
        "ext", exchange.status == 200, f"{_seen(exchange)} for top_k, min_p, repetition_penalty"
    )


async def _auth(ctx: Context) -> Finding:
    if not ctx.endpoint.api_key:
        return Finding("auth", False, "no --api-key given, so not probed")
    bare = Endpoint(ctx.endpoint.base_url, ctx.endpoint.model, None, timeout=ctx.endpoint.timeout)
    exchange = await Context(bare, ctx.session, budget=ctx.budget).send("GET", "/models")
    return Finding("auth", exchange.status == 401, f"{_seen(exchange)} without the key")


async def _seed_and_sampling(ctx: Context) -> list[Finding]:
    body = ctx.request(max_tokens=12, temperature=1.5, seed=1234)
    first, second = await ctx.chat(body), await ctx.chat(body)
    unseeded = await ctx.chat(ctx.request(max_tokens=12, temperature=1.5, seed=4321))
    texts = [
        [(c.get("message") or {}).get("content") for c in _choices(e)]
        for e in (first, second, unseeded)
    ]
    same = bool(texts[0]) and texts[0] == texts[1]
    varies = bool(texts[0]) and texts[0] != texts[2]
    return [
        Finding(
            "seed",
            same and varies,
            "same seed, same text; other seed, other text"
            if same and varies
            else f"same seed same text: {same}; other seed differs: {varies}",
        ),
        Finding(
            "sampling",
            varies,
            "answers vary at temperature 1.5"
            if varies
            else "two answers at temperature 1.5 with different seeds were equal",
        ),
    ]


async def _context_length(ctx: Context) -> int | None:
    exchange = await ctx.send("GET", f"/models/{ctx.endpoint.model}")
    try:
        model = json.loads(exchange.body) if exchange.status == 200 else {}
    except ValueError:
        return None
    for key in ("context_length", "max_model_len", "context_window", "n_ctx"):
        value = model.get(key) if isinstance(model, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


PROBED = ("tools", "logprobs", "n", "json", "ext", "auth", "seed", "sampling")


async def probe(
    endpoint: Endpoint, *, within: float | None = None
) -> tuple[list[Finding], int | None]:
    """What ``endpoint`` supports (one finding per capability of :data:`PROBED`, in that
    order) and its context length when its model card says; about ten small requests, all
    within ``within`` seconds when given: what is not found out by then is a finding of "not
    found" saying so, and the context length None."""
    found: dict[str, Finding] = {}
    context: list[int | None] = [None]

    async def steps(ctx: Context) -> None:
        async def keep(finding: Awaitable[Finding]) -> None:
            done = await finding
            found[done.capability] = done

        singles = (_tools, _logprobs, _n, _json, _ext, _auth)
        await asyncio.gather(*(keep(single(ctx)) for single in singles))
        found.update((f.capability, f) for f in await _seed_and_sampling(ctx))
        context[0] = await _context_length(ctx)

    async with aiohttp.ClientSession(trust_env=False) as session:
        ctx = Context(endpoint, session, budget=Budget(max_requests=20))
        with contextlib.suppress(TimeoutError):  # the time ran out: what was found stays
            await asyncio.wait_for(steps(ctx), within)
    late = f"not found out: the probe's {within or 0:.0f} s ran out"
    return [found.get(cap) or Finding(cap, False, late) for cap in PROBED], context[0]
