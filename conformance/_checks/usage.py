"""Usage checks (group "usage"): token counts, in answers and in the opt-in usage chunk."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conformance._assertions import json_body, require_refused, require_status
from conformance._checks.stream import GREEDY_MAX_TOKENS, complete_chunks, greedy, greedy_stream
from conformance._context import WEATHER_TOOL, Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped, CheckWarning
from conformance._registry import check

__all__ = ["usage_final_chunk", "usage_nonstream", "usage_opt_in", "usage_stream_eq_nonstream"]

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


@check(group="usage")
async def usage_nonstream(ctx: Context) -> None:
    """Non-stream usage counts prompt and completion tokens, total their sum, within max_tokens."""
    answers = await asyncio.gather(ctx.completion(), greedy(ctx))
    for exchange, limit in zip(
        answers, (ctx.request()["max_tokens"], GREEDY_MAX_TOKENS), strict=True
    ):
        require_status(exchange, 200)
        body = json_body(exchange)
        usage = body.get("usage") if isinstance(body, dict) else None
        if usage is None:
            raise CheckWarning(
                "the answer reports no usage",
                expected="usage {prompt_tokens, completion_tokens, total_tokens}",
                received="no usage",
                exchange=exchange,
            )
        problem = usage_problem(usage, limit, _finish(body))
        if problem:
            raise CheckFailed(
                "the answer's usage is wrong",
                expected="prompt_tokens > 0, completion_tokens > 0, total = their sum, "
                f"completion_tokens <= max_tokens ({limit}), == it on length",
                received=problem,
                exchange=exchange,
            )


@check(group="usage")
async def usage_opt_in(ctx: Context) -> None:
    """Streams carry usage only when include_usage asks; stream_options without stream is 400."""
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


@check(group="usage")
async def usage_final_chunk(ctx: Context) -> None:
    """With include_usage, one last chunk before [DONE] has choices [] and the full usage."""
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
    problem = usage_problem(last["usage"], GREEDY_MAX_TOKENS)
    if problem:
        raise CheckFailed(
            "the usage chunk's usage is wrong",
            expected="prompt_tokens > 0, completion_tokens > 0, total = their sum",
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


@check(group="usage")
async def usage_stream_eq_nonstream(ctx: Context) -> None:
    """The same greedy request counts the same tokens streamed or not, tools included."""
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
