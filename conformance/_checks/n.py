"""Checks of n > 1 choices (group "n")."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from conformance._assertions import json_body, require_status
from conformance._checks.stream import by_index, complete_chunks, delta_of
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed
from conformance._registry import check

__all__ = ["N_MAX_TOKENS", "N", "n_answer", "n_nonstream", "n_stream", "sampled"]

N = 3
N_MAX_TOKENS = 16


def sampled(ctx: Context, **overrides: Any) -> dict[str, Any]:
    """A request whose samples at temperature 1 all but never coincide."""
    prompt = "Write ten random English words, separated by spaces."
    return ctx.request(
        messages=[{"role": "user", "content": prompt}],
        temperature=1.0,
        max_tokens=N_MAX_TOKENS,
        **overrides,
    )


def _said(message: dict[str, Any]) -> str:
    """The text of a message or delta: its content, and its reasoning where a reasoning model
    spends the first tokens (vLLM and DeepSeek's reasoning_content, others' reasoning)."""
    parts = (message.get(key) for key in ("reasoning_content", "reasoning", "content"))
    return "".join(p for p in parts if isinstance(p, str))


def n_answer(ctx: Context) -> Awaitable[Exchange]:
    """The run's shared non-stream answer with n = N at temperature 1."""
    return ctx.shared("n:nonstream", lambda: ctx.chat(sampled(ctx, n=N)))


@check(group="n", severity="must", capability="n")
async def n_nonstream(ctx: Context) -> None:
    """n=3 gives three choices indexed 0..2 that differ.
    n 3 at temperature 1 gives 3 choices indexed 0..2, not all equal (what usage counts for them
    is usage_n's requirement).

    Clients use n for best-of sampling and self-consistency: copies of one sample, or a missing
    choice, defeat it."""
    exchange = await n_answer(ctx)
    require_status(exchange, 200)
    body = json_body(exchange)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or len(choices) != N:
        raise CheckFailed(
            f"n={N} did not give {N} choices",
            expected=f"{N} choices",
            received=f"{len(choices) if isinstance(choices, list) else json.dumps(choices)[:80]}",
            exchange=exchange,
        )
    contents = []
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict) or choice.get("index") != position:
            raise CheckFailed(
                f"choices[{position}] has the wrong index",
                expected=str(position),
                received=repr(choice.get("index") if isinstance(choice, dict) else choice),
                exchange=exchange,
            )
        message = choice.get("message")
        contents.append(_said(message if isinstance(message, dict) else {}))
    if len(set(contents)) == 1:
        raise CheckFailed(
            f"the {N} choices sampled at temperature 1 are all the same",
            expected="independent samples",
            received=repr(contents[0])[:200],
            exchange=exchange,
        )


@check(group="n", severity="must", capability="n")
async def n_stream(ctx: Context) -> None:
    """A stream with n=3 gives each index a role chunk, content and one finish, under one id.
    Each choice index 0..2 gets a role chunk, content and exactly one finish chunk, and every chunk
    shares one id, created and model.

    Clients route the chunks of an n > 1 stream to their choice by index."""
    exchange = await ctx.shared("n:stream", lambda: ctx.chat(sampled(ctx, n=N, stream=True)))
    chunks = complete_chunks(exchange)
    indices = by_index(chunks)
    if sorted(indices) != list(range(N)):
        raise CheckFailed(
            f"the stream's choice indices are not 0..{N - 1}",
            expected=str(list(range(N))),
            received=str(sorted(indices)),
            exchange=exchange,
        )
    for index, entries in sorted(indices.items()):
        position, first = entries[0]
        if delta_of(first).get("role") != "assistant":
            raise CheckFailed(
                f"choice {index} does not start with a role chunk (chunk {position})",
                expected='delta.role == "assistant" in its first chunk',
                received=json.dumps(first.get("delta"))[:200],
                exchange=exchange,
            )
        if not "".join(_said(delta_of(c)) for _, c in entries):
            raise CheckFailed(
                f"choice {index} has no content",
                expected="text in the deltas of every choice",
                received=f"{len(entries)} chunks without text",
                exchange=exchange,
            )
        finishes = [p for p, c in entries if c.get("finish_reason") is not None]
        if len(finishes) != 1:
            raise CheckFailed(
                f"choice {index} has {len(finishes)} finish chunks",
                expected="exactly one",
                received=f"chunks {finishes}",
                exchange=exchange,
            )
    with_choices = [c for c in chunks if c.get("choices")]
    for key in ("id", "created", "model"):
        values = {json.dumps(c.get(key)) for c in with_choices}
        if len(values) != 1:
            raise CheckFailed(
                f"the chunks of the n={N} stream do not share one {key}",
                expected=f"one {key} for every choice",
                received=", ".join(sorted(values))[:200],
                exchange=exchange,
            )
