"""Non-ASCII text checks (groups "stream" and "usage"): text in the languages of the seed's model
page (English, German, French, Italian, Portuguese, Hindi, Spanish, Thai) and emoji survives
streaming whole, and a non-ASCII prompt is counted consistently.

The checks judge what comes back, not whether the model wrote the language asked: a small model
that answers ASCII babble to a Thai prompt passes, as long as its streamed and non-stream texts
agree.
"""

from __future__ import annotations

import asyncio
from typing import Any

from conformance._assertions import json_body, require_status
from conformance._checks.stream import by_index, complete_chunks, text_of
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = ["non_ascii_prompt_tokens", "non_ascii_stream_text"]

# The seed's languages, Hindi and Thai in their own scripts, and emoji outside the BMP (a UTF-16
# surrogate pair each).
GREETING_PROMPT = (
    "Greet me in German, French, Italian, Portuguese, Hindi, Spanish and Thai, then add an "
    "emoji: Grüße! Bonjour, ça va ? Ciao, città! Olá, coração! नमस्ते! ¡Hola, señor! "
    "สวัสดีครับ 👋🌍"
)
ASCII_PROMPT = "Say hello."
# Appended to ASCII_PROMPT: words of non-Latin scripts and emoji only (no ASCII between them),
# at least one token more in any tokenizer.
NON_ASCII_TAIL = " नमस्ते दुनिया สวัสดีครับ 👋🌍"
TEXT_MAX_TOKENS = 32
REPLACEMENT = "\ufffd"


def _lone_surrogate(text: str) -> int | None:
    """Where ``text`` holds a UTF-16 surrogate code point (never valid text), or None."""
    return next((i for i, c in enumerate(text) if 0xD800 <= ord(c) <= 0xDFFF), None)


def _around(text: str, at: int) -> str:
    """A few characters of ``text`` around position ``at``, as a Python literal."""
    return repr(text[max(0, at - 12) : at + 12])


def _content(exchange: Exchange) -> str:
    """The content of choice 0 of a 200 non-stream answer; skipped when there is none (the
    response checks say why)."""
    require_status(exchange, 200)
    body = json_body(exchange)
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise CheckSkipped("the non-stream answer has no text content to compare")
    return content


def _require_whole(where: str, text: str, exchange: Exchange) -> None:
    """Fail when ``text`` holds a lone surrogate: no UTF-8 encoder takes it."""
    at = _lone_surrogate(text)
    if at is not None:
        raise CheckFailed(
            f"{where} holds a broken surrogate U+{ord(text[at]):04X}",
            expected="whole characters in every delta: an emoji's two UTF-16 halves together, "
            "or (better) the emoji as UTF-8",
            received=_around(text, at),
            exchange=exchange,
        )


@check(group="stream", severity="must")
async def non_ascii_stream_text(ctx: Context) -> None:
    """Non-ASCII text streams whole: the joined deltas are valid text equal to the non-stream one.
    Asked for greetings in the seed's languages (German, French, Italian, Portuguese, Hindi,
    Spanish, Thai) and emoji at temperature 0 with a seed, streamed and not: no delta holds a
    lone UTF-16 surrogate, the joined deltas hold no U+FFFD the non-stream answer lacks, and they
    equal the non-stream content.

    A server that cuts a multi-byte character between two deltas and decodes each half on its
    own sends U+FFFD instead of the character; one that cuts an emoji between its surrogate
    halves sends text no UTF-8 encoder takes (Python clients raise on it). Whatever the model
    writes, streaming must not change it."""
    body = ctx.request(
        messages=[{"role": "user", "content": GREETING_PROMPT}],
        temperature=0,
        seed=1234,
        max_tokens=TEXT_MAX_TOKENS,
    )
    plain, streamed = await asyncio.gather(ctx.chat(body), ctx.chat({**body, "stream": True}))
    content = _content(plain)
    _require_whole("the non-stream content", content, plain)
    deltas = [text_of(c) for _, c in by_index(complete_chunks(streamed)).get(0, [])]
    for position, delta in enumerate(deltas):
        _require_whole(f"content delta {position} of choice 0", delta, streamed)
    joined = "".join(deltas)
    if joined.count(REPLACEMENT) > content.count(REPLACEMENT):
        at = joined.index(REPLACEMENT)
        raise CheckFailed(
            f"the joined deltas hold {joined.count(REPLACEMENT)} U+FFFD replacement "
            f"character(s), the non-stream answer {content.count(REPLACEMENT)}",
            expected=f"the characters of the non-stream answer: {_around(content, at)}",
            received=_around(joined, at),
            exchange=streamed,
            pair=plain,
        )
    if joined != content:
        pairs = enumerate(zip(joined, content, strict=False))
        at = next((i for i, (a, b) in pairs if a != b), min(len(joined), len(content)))
        raise CheckFailed(
            f"the streamed non-ASCII text differs from the non-stream text from character {at}",
            expected=_around(content, at),
            received=_around(joined, at),
            exchange=streamed,
            pair=plain,
        )


def _prompt_tokens(exchange: Exchange) -> int | None:
    """prompt_tokens of a 200 answer's usage (a stream's last usage chunk), or None."""
    if exchange.status != 200:
        return None
    usage: Any = None
    if exchange.content_type == "text/event-stream" or exchange.body.startswith(b"data:"):
        try:  # a broken stream is the stream checks' to report
            chunks = complete_chunks(exchange)
        except CheckFailed:
            return None
        usage = next((c["usage"] for c in reversed(chunks) if c.get("usage") is not None), None)
    else:
        body = json_body(exchange)
        usage = body.get("usage") if isinstance(body, dict) else None
    count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


@check(group="usage", severity="must")
async def non_ascii_prompt_tokens(ctx: Context) -> None:
    """Non-ASCII prompt text counts: more prompt_tokens than without it, the same when streamed.
    "Say hello." with Hindi, Thai and emoji appended counts more prompt_tokens than "Say hello."
    alone, and the same streamed (with include_usage) as not; a stream without usage is not
    compared.

    Token budgets and bills must not shrink or change with the script a prompt is written in, nor
    with streaming: a server that drops non-ASCII text, or decodes a streamed prompt's UTF-8 as
    another encoding, counts (and answers) a different prompt."""
    short = ctx.request(
        messages=[{"role": "user", "content": ASCII_PROMPT}], temperature=0, max_tokens=8
    )
    long = {**short, "messages": [{"role": "user", "content": ASCII_PROMPT + NON_ASCII_TAIL}]}
    streamed = {**long, "stream": True, "stream_options": {"include_usage": True}}
    exchanges = await asyncio.gather(ctx.chat(short), ctx.chat(long), ctx.chat(streamed))
    counts = [_prompt_tokens(e) for e in exchanges]
    if counts[0] is None or counts[1] is None:
        raise CheckSkipped("no prompt_tokens to compare (usage_nonstream says why)")
    if counts[1] <= counts[0]:
        raise CheckFailed(
            f"appending {NON_ASCII_TAIL.strip()!r} to the prompt did not raise prompt_tokens",
            expected=f"more than the {counts[0]} of {ASCII_PROMPT!r} alone",
            received=f"prompt_tokens {counts[1]}",
            exchange=exchanges[1],
        )
    if counts[2] is not None and counts[2] != counts[1]:
        raise CheckFailed(
            "the non-ASCII prompt counts other prompt_tokens when streamed",
            expected=f"prompt_tokens {counts[1]}, as without streaming",
            received=f"prompt_tokens {counts[2]}",
            exchange=exchanges[2],
        )
