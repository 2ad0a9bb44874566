"""Usage checks (group "usage"): token counts, in answers and in the opt-in usage chunk."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conformance._assertions import json_body, require_refused, require_status
from conformance._checks.n import N_MAX_TOKENS, N, n_answer, sampled
from conformance._checks.stream import (
    GREEDY_MAX_TOKENS,
    by_index,
    complete_chunks,
    greedy,
    greedy_stream,
)
from conformance._context import WEATHER_TOOL, Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = [
    "usage_final_chunk",
    "usage_n",
    "usage_nonstream",
    "usage_opt_in",
    "usage_reported",
    "usage_stream_eq_nonstream",
]

_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def usage_problem(usage: Any, limit: int | None = None, finish: Any = None) -> str | None:
    """What is wrong with a usage object of a one-choice answer, or None: integer
    prompt_/completion_/total_tokens, both parts > 0, total their sum, completion within
    ``limit`` and equal to it when ``finish`` is "length"."""
    if not isinstance(usage, dict):
        return f"usage is not an object: {json.dumps(usage)[:200]}"
    if "prompt_tokens" not in usage and ("input_tokens" in usage or "output_tokens" in usage):
        return f"usage says input_/output_tokens, not prompt_/completion_tokens: {usage}"
    for key in _COUNTS:
        value = usage.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"usage.{key} is not a count: {value!r}"
    prompt, completion, total = (usage[k] for k in _COUNTS)
    if prompt == 0 or completion == 0:
        return f"a zero count: prompt_tokens {prompt}, completion_tokens {completion}"
    if total != prompt + completion:
        return f"total_tokens {total} != prompt_tokens {prompt} + completion_tokens {completion}"
    if limit is not None and completion > limit:
        return f"completion_tokens {completion} > max_tokens {limit}"
    if limit is not None and finish == "length" and completion != limit:
        return f'finish_reason "length" but completion_tokens {completion} != max_tokens {limit}'
    return None


def _finish(body: Any) -> Any:
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    return first.get("finish_reason") if isinstance(first, dict) else None


def _stream_usage(exchange: Exchange) -> Any:
    """The usage of the last chunk that carries one, or None."""
    chunks = complete_chunks(exchange)
    return next((c["usage"] for c in reversed(chunks) if c.get("usage") is not None), None)


async def _nonstream_answers(ctx: Context) -> list[Exchange]:
    """The run's basic answer and its temperature-0 answer (both shared)."""
    return list(await asyncio.gather(ctx.completion(), greedy(ctx)))


@check(group="usage", severity="must")
async def usage_nonstream(ctx: Context) -> None:
    """Non-stream usage counts prompt and completion tokens, total their sum, within max_tokens.
    Integer prompt_tokens > 0 and completion_tokens > 0 (not input_/output_tokens), total_tokens
    their sum, completion_tokens <= max_tokens and equal to it on finish_reason "length", in the
    run's basic answer and in its temperature-0 answer.

    An answer without usage is inconclusive here (usage_reported fails it): clients that budget
    by these numbers are misled by wrong counts."""
    answers = await _nonstream_answers(ctx)
    for exchange, limit in zip(
        answers, (ctx.request()["max_tokens"], GREEDY_MAX_TOKENS), strict=True
    ):
        require_status(exchange, 200)
        body = json_body(exchange)
        usage = body.get("usage") if isinstance(body, dict) else None
        if usage is None:
            raise CheckSkipped("inconclusive: the answer reports no usage (see usage_reported)")
        problem = usage_problem(usage, limit, _finish(body))
        if problem:
            raise CheckFailed(
                "the answer's usage is wrong",
                expected="prompt_tokens > 0, completion_tokens > 0, total = their sum, "
                f"completion_tokens <= max_tokens ({limit}), == it on length",
                received=problem,
                exchange=exchange,
            )


@check(group="usage", severity="must")
async def usage_reported(ctx: Context) -> None:
    """A non-stream answer reports usage.
    The run's basic answer and its temperature-0 answer each carry a usage object (not left out,
    not null).

    OpenAI (and the seed's provider) report usage on every non-stream answer; metering, cost
    tracking and token budgets depend on it (the SDKs' ``response.usage``, LangChain's token
    callbacks), so an answer without it is a failure. What the counts say is usage_nonstream's
    requirement."""
    for exchange in await _nonstream_answers(ctx):
        require_status(exchange, 200)
        body = json_body(exchange)
        if not isinstance(body, dict) or body.get("usage") is None:
            raise CheckFailed(
                "the answer reports no usage",
                expected="usage {prompt_tokens, completion_tokens, total_tokens}",
                received="usage null" if isinstance(body, dict) and "usage" in body else "no usage",
                exchange=exchange,
            )


@check(group="usage", severity="must")
async def usage_opt_in(ctx: Context) -> None:
    """Streams carry usage only when include_usage asks; stream_options without stream is 400.
    Without stream_options.include_usage no chunk carries usage (absent or null); stream_options
    with stream false gets 400 (or 422).

    Clients that do not ask for usage do not expect the extra usage chunk with choices [] (it
    breaks those that index choices[0]); OpenAI refuses stream_options on a non-stream request."""
    exchange = await ctx.stream()
    chunks = complete_chunks(exchange)
    for position, chunk in enumerate(chunks):
        if chunk.get("usage") is not None:
            raise CheckFailed(
                f"chunk {position} carries usage though include_usage was not asked",
                expected="usage absent or null in every chunk",
                received=json.dumps(chunk.get("usage"))[:200],
                exchange=exchange,
            )
    body = ctx.request(stream=False, stream_options={"include_usage": True})
    bad = await ctx.shared("usage:stream-options-without-stream", lambda: ctx.chat(body))
    require_refused(
        "stream_options with stream false",
        bad,
        expected="400: stream_options is only allowed when stream is true",
    )


@check(group="usage", severity="must")
async def usage_final_chunk(ctx: Context) -> None:
    """With include_usage, one last chunk before [DONE] has choices [] and the full usage.
    Only the last chunk before [DONE] carries usage, with choices [] and counts that add up
    (prompt_tokens > 0, completion_tokens > 0, total_tokens their sum, completion_tokens within
    max_tokens and equal to it when the stream finished by "length").

    The SDKs read a stream's usage from that chunk, where OpenAI sends it; usage in other chunks,
    or none, leaves streamed answers unbilled or billed twice."""
    exchange = await greedy_stream(ctx)
    chunks = complete_chunks(exchange)
    carriers = [p for p, c in enumerate(chunks) if c.get("usage") is not None]
    if not carriers:
        raise CheckFailed(
            "no chunk carries usage though stream_options.include_usage was true",
            expected="a last chunk with choices [] and usage",
            received=f"{len(chunks)} chunks, none with usage",
            exchange=exchange,
        )
    if carriers != [len(chunks) - 1]:
        raise CheckFailed(
            "usage comes in chunks other than the last",
            expected="usage null in every chunk but the last",
            received=f"usage in chunks {carriers} of {len(chunks)}",
            exchange=exchange,
        )
    last = chunks[-1]
    if last.get("choices") != []:
        raise CheckFailed(
            "the usage chunk carries choices",
            expected="choices [] in the usage chunk, after every finish chunk",
            received=json.dumps(last.get("choices"))[:200],
            exchange=exchange,
        )
    finishes = [c.get("finish_reason") for _, c in by_index(chunks).get(0, [])]
    finish = next((f for f in finishes if f is not None), None)
    problem = usage_problem(last["usage"], GREEDY_MAX_TOKENS, finish)
    if problem:
        raise CheckFailed(
            "the usage chunk's usage is wrong",
            expected="prompt_tokens > 0, completion_tokens > 0, total = their sum, "
            f'completion_tokens <= max_tokens ({GREEDY_MAX_TOKENS}), == it on "length"',
            received=problem,
            exchange=exchange,
        )


async def _compare(plain: Exchange, streamed: Exchange) -> None:
    require_status(plain, 200)
    body = json_body(plain)
    usage = body.get("usage") if isinstance(body, dict) else None
    stream_usage = _stream_usage(streamed)
    if not isinstance(usage, dict) or not isinstance(stream_usage, dict):
        raise CheckSkipped("no usage on both sides (usage_nonstream, usage_final_chunk say why)")
    for key in _COUNTS[:2]:
        if usage.get(key) != stream_usage.get(key):
            raise CheckFailed(
                f"{key} differs between the stream and the non-stream answer",
                expected=f"{key} {usage.get(key)!r}, as without streaming",
                received=f"{key} {stream_usage.get(key)!r}",
                exchange=streamed,
            )


@check(group="usage", severity="must")
async def usage_stream_eq_nonstream(ctx: Context) -> None:
    """The same greedy request counts the same tokens streamed or not, tools included.
    prompt_tokens and completion_tokens of the greedy stream's usage chunk equal those of the
    non-stream answer to the same request; with tools claimed, for a tool-calling request too.

    Token budgets and bills must not depend on whether the client streamed."""
    plain, streamed = await asyncio.gather(greedy(ctx), greedy_stream(ctx))
    await _compare(plain, streamed)
    if "tools" not in ctx.endpoint.capabilities:
        return
    body = ctx.request(
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        temperature=0,
        seed=1234,
        max_tokens=48,
    )
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    plain, streamed = await asyncio.gather(
        ctx.shared("usage:tools", lambda: ctx.chat(body)),
        ctx.shared("usage:tools-stream", lambda: ctx.chat(stream_body)),
    )
    await _compare(plain, streamed)


def _n_usage_problem(usage: Any, finishes: list[Any], prompt: Any) -> str | None:
    """What is wrong with the usage of an answer of len(finishes) choices, or None: counts that
    add up, completion_tokens the sum over the choices (N_MAX_TOKENS for each cut by "length",
    at most N_MAX_TOKENS for the others), prompt_tokens ``prompt`` (the prompt's count with n 1,
    None when unknown)."""
    problem = usage_problem(usage)
    if problem:
        return problem
    cut = sum(f == "length" for f in finishes)
    floor, ceiling = cut * N_MAX_TOKENS, len(finishes) * N_MAX_TOKENS
    if not floor <= usage["completion_tokens"] <= ceiling:
        return (
            f"completion_tokens {usage['completion_tokens']} is not the sum over "
            f"{len(finishes)} choices ({cut} cut by length): between {floor} and {ceiling}"
        )
    if prompt is not None and usage["prompt_tokens"] != prompt:
        return f"prompt_tokens {usage['prompt_tokens']} != {prompt} (the same prompt with n 1)"
    return None


def _require_n_usage(exchange: Exchange, usage: Any, finishes: list[Any], prompt: Any) -> None:
    problem = _n_usage_problem(usage, finishes, prompt)
    if problem:
        raise CheckFailed(
            f"usage does not add up over the n={N} choices",
            expected=f"prompt_tokens counted once, completion_tokens summed over the {N} choices, "
            "total_tokens their sum",
            received=problem,
            exchange=exchange,
        )


@check(group="usage", severity="must", capability="n")
async def usage_n(ctx: Context) -> None:
    """With n=3, usage counts the prompt once and every choice's tokens, streamed or not.
    In the non-stream answer with n 3 (temperature 1) and in the usage chunk of the same request
    streamed with include_usage: prompt_tokens equals the same prompt's with n 1,
    completion_tokens sums the 3 choices (max_tokens for each cut by "length", at most
    3 x max_tokens), total_tokens is their sum; a non-stream answer without usage fails.

    Metering and cost tracking take n choices' tokens from one usage object: usage that counts
    one choice, or the prompt n times, bills the wrong amount."""
    stream_body = sampled(ctx, n=N, stream=True, stream_options={"include_usage": True})
    plain, streamed, single = await asyncio.gather(
        n_answer(ctx),
        ctx.shared("usage:n-stream", lambda: ctx.chat(stream_body)),
        ctx.shared("n:single", lambda: ctx.chat(sampled(ctx))),
    )
    reference = json_body(single) if single.status == 200 else None
    reference_usage = reference.get("usage") if isinstance(reference, dict) else None
    prompt = reference_usage.get("prompt_tokens") if isinstance(reference_usage, dict) else None
    require_status(plain, 200)
    body = json_body(plain)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not isinstance(body.get("usage"), dict):
        raise CheckFailed(
            f"the n={N} answer has no choices list or no usage object",
            expected=f"{N} choices and usage",
            received=json.dumps(body)[:200],
            exchange=plain,
        )
    finishes = [c.get("finish_reason") if isinstance(c, dict) else None for c in choices]
    _require_n_usage(plain, body["usage"], finishes, prompt)
    usage = _stream_usage(streamed)
    if usage is None:
        return  # a stream without usage is usage_final_chunk's
    entries = by_index(complete_chunks(streamed))
    finishes = [
        next((c["finish_reason"] for _, c in e if c.get("finish_reason")), None)
        for e in entries.values()
    ]
    _require_n_usage(streamed, usage, finishes, prompt)
