"""Where the answer is (group "response"): the answer to a plain request is in content; the
reasoning fields servers add (``reasoning_content``, ``reasoning``) are tolerated extras."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conformance._assertions import chunks_of
from conformance._checks.stream import by_index, delta_of
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = ["answer_in_content"]

REASONING_FIELDS = ("reasoning_content", "reasoning")
THINKING_OFF = {"chat_template_kwargs": {"enable_thinking": False}}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _placed(exchange: Exchange) -> tuple[Any, dict[str, str], Any] | None:
    """Choice 0's content, its reasoning fields' text and its finish_reason, streamed (deltas
    joined) or not; None for an answer that is not a 200 with a choice (other checks judge it)."""
    if exchange.status != 200:
        return None
    if exchange.content_type == "text/event-stream":
        try:
            _, chunks = chunks_of(exchange)
        except CheckFailed:
            return None
        entries = [c for _, c in by_index(chunks).get(0, [])]
        if not entries:
            return None
        deltas = [delta_of(c) for c in entries]
        reasoning = {f: "".join(_text(d.get(f)) for d in deltas) for f in REASONING_FIELDS}
        finish = next((c["finish_reason"] for c in entries if c.get("finish_reason")), None)
        return "".join(_text(d.get("content")) for d in deltas), reasoning, finish
    try:
        body = exchange.json()
    except ValueError:
        return None
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(first, dict) or not isinstance(message, dict):
        return None
    reasoning = {f: _text(message.get(f)) for f in REASONING_FIELDS}
    return message.get("content"), reasoning, first.get("finish_reason")


def _require_content(what: str, exchange: Exchange, *, thinking_may_run: bool) -> bool:
    """Fail when choice 0 of ``exchange`` has reasoning text but no content. A reasoning model
    cut by max_tokens while it was still thinking (finish "length") is no failure where thinking
    may run. Returns whether the answer could be judged."""
    placed = _placed(exchange)
    if placed is None:
        return False
    content, reasoning, finish = placed
    held = {f: t for f, t in reasoning.items() if t}
    if content or not held:
        return True
    if thinking_may_run and finish == "length":
        return True
    field, text = next(iter(held.items()))
    raise CheckFailed(
        f"the answer to {what} is in {field}, and content is empty",
        expected="the answer in message.content (reasoning fields are extras beside it)",
        received=f"content {json.dumps(content)}, {field} {json.dumps(text)[:120]}, "
        f"finish_reason {json.dumps(finish)}",
        exchange=exchange,
    )


@check(group="response", severity="must")
async def answer_in_content(ctx: Context) -> None:
    """The answer is in content, not only in reasoning_content / reasoning.
    In the basic answer, with chat_template_kwargs {"enable_thinking": false} (streamed and not)
    and with reasoning_effort "low", choice 0 never has reasoning text with an empty content;
    only a reasoning model cut by max_tokens while thinking (finish "length", thinking not
    switched off) may. A refusal (4xx) of either field is no failure.

    Clients read the answer from content and ignore fields they do not know: a server that put
    the whole answer in reasoning_content with thinking switched off (seen with
    enable_thinking false) answers them with nothing."""
    off = ctx.request(**THINKING_OFF)
    effort = ctx.request(reasoning_effort="low")
    basic, off_plain, off_stream, with_effort = await asyncio.gather(
        ctx.completion(),
        ctx.chat(off),
        ctx.chat({**off, "stream": True}),
        ctx.chat(effort),
    )
    judged = [
        _require_content("the basic request", basic, thinking_may_run=True),
        _require_content("a request with enable_thinking false", off_plain, thinking_may_run=False),
        _require_content(
            "a streamed request with enable_thinking false", off_stream, thinking_may_run=False
        ),
        _require_content(
            'a request with reasoning_effort "low"', with_effort, thinking_may_run=True
        ),
    ]
    if not any(judged):
        raise CheckSkipped("no request was answered with a choice to judge")
