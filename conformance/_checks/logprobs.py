"""Logprobs checks (group "logprobs").

``top_logprobs=k`` gives k alternatives per token (vLLM and SGLang assert ``==``). OpenAI
documents that "in some cases, the number of returned tokens may be fewer than requested", so
some short lists break a recommendation (lp_count_every_token); every list short, or any list
long, breaks the requirement (lp_count): that is a dropped parameter or an off-by-one.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable
from typing import Any

from conformance._assertions import chunks_of, json_body, require_refused, require_status
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = [
    "LP_TOP",
    "entries_of",
    "greedy_logprobs",
    "joined_tokens",
    "logprobs_request",
    "lp_count",
    "lp_count_every_token",
    "lp_shape",
    "lp_stream",
]

LP_TOP = 3  # top_logprobs of the shared logprobs exchanges
LP_MAX_TOKENS = 12
MAX_TOP_LOGPROBS = 20  # OpenAI's limit (and vLLM's default max_logprobs)
_MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow, separated by commas."}]
_SPECIAL = re.compile(r"<\|[^|]*\|>|</s>|<eos>|<end_of_turn>")


def logprobs_request(ctx: Context, **overrides: Any) -> dict[str, Any]:
    """A short greedy request with logprobs: temperature 0 and every penalty neutral (so that
    the sampled token is the argmax of the raw distribution on every engine)."""
    neutral: dict[str, Any] = {"presence_penalty": 0, "frequency_penalty": 0}
    if "ext" in ctx.endpoint.capabilities:
        neutral["repetition_penalty"] = 1.0  # engines may default it from generation_config
    body = ctx.request(
        **{
            "messages": _MESSAGES,
            "temperature": 0,
            "max_tokens": LP_MAX_TOKENS,
            "logprobs": True,
            "top_logprobs": LP_TOP,
            **neutral,
            **overrides,
        }
    )
    return {k: v for k, v in body.items() if v is not None}  # None: leave the key out


def greedy_logprobs(ctx: Context) -> Awaitable[Exchange]:
    """The run's shared greedy non-stream exchange with ``top_logprobs`` = LP_TOP."""
    body = logprobs_request(ctx)
    return ctx.shared("logprobs:greedy", lambda: ctx.chat(body))


def _choice(exchange: Exchange) -> dict[str, Any]:
    require_status(exchange, 200)
    body = json_body(exchange)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CheckFailed("the answer has no choices[0]", exchange=exchange)
    choice: dict[str, Any] = choices[0]
    return choice


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _alternative_problem(item: Any) -> str | None:
    """What keeps ``item`` from being {token: str, logprob: number <= 0, bytes: [int]|null}."""
    if not isinstance(item, dict):
        return f"not an object: {item!r}"
    if not isinstance(item.get("token"), str):
        return f"token is not a string: {item.get('token')!r}"
    if not _number(item.get("logprob")) or item["logprob"] > 1e-6:
        return f"logprob is not a number <= 0: {item.get('logprob')!r}"
    data = item.get("bytes")
    if data is not None and (
        not isinstance(data, list) or not all(isinstance(b, int) and 0 <= b < 256 for b in data)
    ):
        return f"bytes is not a list of byte values or null: {data!r}"
    return None


def entries_of(exchange: Exchange, logprobs: Any) -> list[dict[str, Any]]:
    """``logprobs.content`` of a choice in the chat shape, or a failure saying what it is."""
    if isinstance(logprobs, dict) and ("tokens" in logprobs or "token_logprobs" in logprobs):
        raise CheckFailed(
            "logprobs come in the legacy completions shape",
            expected='{"content": [{"token", "logprob", "bytes", "top_logprobs"}]}',
            received=json.dumps(logprobs)[:300],
            exchange=exchange,
        )
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        raise CheckFailed(
            "logprobs were asked for but logprobs.content is not a list",
            expected='{"content": [...]}',
            received=json.dumps(logprobs)[:300],
            exchange=exchange,
        )
    for position, entry in enumerate(content):
        problem = _alternative_problem(entry)
        top = entry.get("top_logprobs") if isinstance(entry, dict) else None
        if problem is None and not isinstance(top, list):
            problem = f"top_logprobs is not a list: {top!r}"
        for item in top if problem is None and isinstance(top, list) else []:
            problem = _alternative_problem(item)
            if problem:
                problem = f"top_logprobs entry {problem}"
                break
        if problem:
            raise CheckFailed(
                f"logprobs.content[{position}] is malformed: {problem}",
                expected='{"token": str, "logprob": number <= 0, "bytes": [int] | null, '
                '"top_logprobs": [{"token", "logprob", "bytes"}]}',
                received=json.dumps(entry)[:300],
                exchange=exchange,
            )
    return content


def joined_tokens(entries: list[dict[str, Any]]) -> str:
    """The text the entries spell: their bytes when all have them (tokens may split a UTF-8
    character), else their tokens; trailing special tokens (end of turn) left out."""
    while entries and (entries[-1]["token"] == "" or _SPECIAL.fullmatch(entries[-1]["token"])):
        entries = entries[:-1]
    if all(isinstance(e.get("bytes"), list) for e in entries):
        return b"".join(bytes(e["bytes"]) for e in entries).decode("utf-8", "replace")
    return "".join(e["token"] for e in entries)


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


@check(group="logprobs", severity="must", capability="logprobs")
async def lp_shape(ctx: Context) -> None:
    """logprobs.content holds chat-shaped entries (logprob <= 0) whose tokens spell the text.
    logprobs.content (not the completions shape) holds {token, logprob <= 0, bytes: [int] or null,
    top_logprobs: [{token, logprob, bytes}]} entries whose bytes (else tokens) spell the message
    content, trailing special tokens aside.

    The SDKs type the chat shape; the completions shape (tokens, token_logprobs) is another
    endpoint's, and tokens that do not spell the text cannot be mapped back to it."""
    exchange = await greedy_logprobs(ctx)
    choice = _choice(exchange)
    entries = entries_of(exchange, choice.get("logprobs"))
    content = (choice.get("message") or {}).get("content") or ""
    if content and not entries:
        raise CheckFailed(
            "the answer has text but logprobs.content is empty",
            expected="one entry per token",
            received="[]",
            exchange=exchange,
        )
    joined = joined_tokens(entries)
    if joined.strip() != content.strip():
        raise CheckFailed(
            "the logprobs tokens do not spell the message content: "
            + _misspelling(entries, content, joined),
            expected=repr(content[:200]),
            received=repr(joined[:200]),
            exchange=exchange,
        )


def _misspelling(entries: list[dict[str, Any]], content: str, joined: str) -> str:
    """Where the tokens' text first differs from ``content``, and which entries are empty: a
    token that is part of a multi-byte UTF-8 character shown as "token": "" with "bytes": []
    (vLLM: vllm/v1/engine/logprobs.py, _correct_decoded_token) drops its bytes, which OpenAI
    lists so that the bytes of several tokens rebuild the character."""
    content, joined = content.strip(), joined.strip()
    at = next(
        (i for i, (a, b) in enumerate(zip(content, joined, strict=False)) if a != b),
        min(len(content), len(joined)),
    )
    where = (
        f"at character {at} the content has {content[at : at + 8]!r}, "
        f"the tokens {joined[at : at + 8]!r}"
    )
    empty = [i for i, e in enumerate(entries) if e["token"] == "" and e.get("bytes") == []]
    if not empty:
        return where
    return (
        f'{where}; tokens {empty} (of {len(entries)}) have "token": "" and "bytes": [], '
        "parts of a multi-byte character whose bytes were left out, so the bytes cannot "
        "rebuild the text"
        + (" (the content shows U+FFFD for such a byte)" if "\ufffd" in content else "")
    )


def _counts(exchange: Exchange) -> list[int]:
    """The number of top_logprobs alternatives of each token of a logprobs answer."""
    entries = entries_of(exchange, _choice(exchange).get("logprobs"))
    return [len(e["top_logprobs"]) for e in entries]


@check(group="logprobs", severity="must", capability="logprobs")
async def lp_count(ctx: Context) -> None:
    """top_logprobs=k gives k alternatives, 0 gives [], above 20 gets 400, logprobs=false null.
    top_logprobs 3 gives 3 alternatives for at least one token and more for none, 0 gives [] for
    every token, 21 gets 400 (or 422), logprobs false gives logprobs null or no key.

    Every list short, or any list long, is a parameter dropped or read off by one; a few short
    lists are lp_count_every_token's (a recommendation: OpenAI says there may be fewer)."""
    exchange, zero, too_many, off = await asyncio.gather(
        greedy_logprobs(ctx),
        ctx.chat(logprobs_request(ctx, top_logprobs=0)),
        ctx.chat(logprobs_request(ctx, top_logprobs=MAX_TOP_LOGPROBS + 1)),
        ctx.chat(logprobs_request(ctx, logprobs=False, top_logprobs=None)),
    )
    counts = _counts(exchange)
    if not counts:
        raise CheckFailed(
            "logprobs=true gave no entries", expected="one entry per token", exchange=exchange
        )
    if max(counts) != LP_TOP:  # any list too long, or every list short
        raise CheckFailed(
            f"top_logprobs={LP_TOP} gave the wrong number of alternatives",
            expected=f"{LP_TOP} per token",
            received=f"per token: {counts}",
            exchange=exchange,
        )
    for position, entry in enumerate(entries_of(zero, _choice(zero).get("logprobs"))):
        if entry["top_logprobs"] != []:
            raise CheckFailed(
                f"top_logprobs=0 gave alternatives for token {position}",
                expected="top_logprobs []",
                received=json.dumps(entry["top_logprobs"])[:200],
                exchange=zero,
            )
    require_refused(
        f"top_logprobs={MAX_TOP_LOGPROBS + 1}",
        too_many,
        expected=f"400: top_logprobs is at most {MAX_TOP_LOGPROBS}",
    )
    logprobs = _choice(off).get("logprobs")
    if logprobs is not None:
        raise CheckFailed(
            "logprobs=false still gave logprobs",
            expected="logprobs null (or left out)",
            received=json.dumps(logprobs)[:200],
            exchange=off,
        )


@check(group="logprobs", severity="should", capability="logprobs")
async def lp_count_every_token(ctx: Context) -> None:
    """top_logprobs=k gives k alternatives for every token.
    top_logprobs 3 gives 3 alternatives for each token of the answer, none short.

    OpenAI documents that "in some cases, the number of returned tokens may be fewer than
    requested", so a short list is allowed; but vLLM and SGLang give exactly k, and tools that
    read k alternatives per token (confidence scores, entropy over the top k) assume whole
    lists."""
    exchange = await greedy_logprobs(ctx)
    counts = _counts(exchange)
    if not counts:
        raise CheckSkipped("inconclusive: the answer has no logprobs entries (lp_count reports it)")
    if min(counts) < LP_TOP:
        raise CheckFailed(
            f"top_logprobs={LP_TOP} gave fewer alternatives for some tokens",
            expected=f"{LP_TOP} per token",
            received=f"per token: {counts}",
            exchange=exchange,
        )


@check(group="logprobs", severity="must", capability="logprobs")
async def lp_stream(ctx: Context) -> None:
    """Every streamed chunk with text carries logprobs that spell the streamed text.
    Each chunk of a logprobs stream whose delta has text carries logprobs.content entries, and all
    of them together spell the streamed text.

    Clients that show token confidence while streaming read each chunk's logprobs with its text."""
    body = logprobs_request(ctx, stream=True)
    exchange = await ctx.shared("logprobs:stream", lambda: ctx.chat(body))
    _, chunks = chunks_of(exchange)
    text, entries = "", []
    for position, chunk in enumerate(chunks):
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _obj(choice.get("delta"))
            piece = delta.get("content") or ""
            logprobs = choice.get("logprobs")
            if logprobs is None:
                if piece:
                    raise CheckFailed(
                        f"chunk {position} has text but no logprobs",
                        expected="logprobs.content entries for the chunk's tokens",
                        received=f"content {piece!r}, logprobs null",
                        exchange=exchange,
                    )
                continue
            found = entries_of(exchange, logprobs)
            if piece and not found:
                raise CheckFailed(
                    f"chunk {position} has text but logprobs.content is empty",
                    expected="logprobs.content entries for the chunk's tokens",
                    received=f"content {piece!r}",
                    exchange=exchange,
                )
            text += piece
            entries.extend(found)
    joined = joined_tokens(entries)
    if joined.strip() != text.strip():
        raise CheckFailed(
            "the streamed logprobs tokens do not spell the streamed text",
            expected=repr(text[:200]),
            received=repr(joined[:200]),
            exchange=exchange,
        )
