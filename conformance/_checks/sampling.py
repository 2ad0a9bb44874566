"""Sampling semantics on any endpoint, read through logprobs: only what holds for every engine.

vLLM returns *raw* logprobs (before penalties, temperature and truncation), llama.cpp by
default too, and engines differ in the order they apply temperature, top-k, top-p and min-p.
At temperature 1 and with every penalty neutral, though, the raw distribution is the one each
truncation rule sees, and each rule keeps a set that the raw logprobs can bound:

- top-k keeps the k most likely tokens (ties at the k-th value kept by vLLM/HF, not llama.cpp);
- top-p keeps a token when the mass strictly above it is below p (vLLM, HF, llama.cpp; Meta's
  reference keeps it at exactly p), and a truncation applied before it only shrinks the set;
- min-p keeps a token whose probability is at least min_p times the largest (a ratio, so it
  holds whether the logprobs are raw or renormalized);
- frequency and presence penalties count generated tokens (OpenAI's formula, vLLM) or the last 64
  tokens of prompt and answer (llama.cpp): either way +2 and -2 must change a greedy answer that
  is asked to repeat one word (a server on plain transformers, which has no such penalties and
  ignores them, fails).

A position whose top_logprobs cannot decide is left out; a check with no decidable position is
skipped as inconclusive, never failed. ``n`` > 1 choices differing at T > 0 is the n group's
``n_nonstream``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from typing import Any

from conformance._assertions import json_body, require_status
from conformance._checks.logprobs import entries_of, greedy_logprobs, logprobs_request
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = [
    "greedy_is_argmax",
    "penalties_lower_repetition",
    "sampled_above_min_p",
    "sampled_in_nucleus",
    "sampled_in_topk",
    "top_k1_equals_greedy",
]

TOL = 1e-3  # nats: logprobs are float32 on every engine we know
SEED = 4242  # sent so that a seeded engine repeats itself; nothing relies on it
TOP_K = 2
TOP_P = 0.5
MIN_P = 0.3
SAMPLED_MAX_TOKENS = 16
_WORDS = [{"role": "user", "content": "Write ten random English words, separated by spaces."}]
PENALTY = 2.0  # frequency_penalty and presence_penalty: +2 to penalize, -2 to reward repeats
PENALTY_MAX_TOKENS = 32
_REPEAT = [{"role": "user", "content": "Write the word cat forty times: cat cat cat cat cat cat"}]
_PIECE = re.compile(r"\w+|[^\w ]")  # words, and every other character but the space


def _sampled_request(ctx: Context, **overrides: Any) -> dict[str, Any]:
    """A temperature 1 request with logprobs, every penalty neutral."""
    return logprobs_request(
        ctx,
        messages=_WORDS,
        temperature=1.0,
        seed=SEED,
        max_tokens=SAMPLED_MAX_TOKENS,
        **overrides,
    )


def _require(ctx: Context, *capabilities: str) -> None:
    missing = [c for c in capabilities if c not in ctx.endpoint.capabilities]
    if missing:
        raise CheckSkipped(f"needs capability {', '.join(map(repr, missing))} as well")


def _entries(exchange: Exchange) -> list[dict[str, Any]]:
    """The chat logprobs entries of choice 0 of a 200 answer; unusable logprobs skip the check
    (lp_shape reports them)."""
    require_status(exchange, 200)
    body = json_body(exchange)
    try:
        choice = body["choices"][0]
        return entries_of(exchange, choice.get("logprobs"))
    except (CheckFailed, LookupError, TypeError, AttributeError) as exc:
        raise CheckSkipped(f"the logprobs cannot be read ({exc}); lp_shape reports it") from None


def _describe(entry: dict[str, Any]) -> str:
    top = ", ".join(f"{t['token']!r} {t['logprob']:.3f}" for t in entry["top_logprobs"])
    return f"sampled {entry['token']!r} {entry['logprob']:.3f}; top_logprobs {top}"


def _not_argmax(entries: list[dict[str, Any]]) -> tuple[int, dict[str, Any]] | None:
    """The first (position, entry) whose token is less likely than one of its alternatives."""
    for position, entry in enumerate(entries):
        top = [t["logprob"] for t in entry["top_logprobs"]]
        if top and entry["logprob"] < max(top) - TOL:
            return position, entry
    return None


def _content(exchange: Exchange) -> Any:
    require_status(exchange, 200)
    body = json_body(exchange)
    try:
        return body["choices"][0]["message"].get("content")
    except (LookupError, TypeError, AttributeError):
        raise CheckFailed("the answer has no choices[0].message", exchange=exchange) from None


@check(group="sampling", severity="must", capability="logprobs")
async def greedy_is_argmax(ctx: Context) -> None:
    """At temperature 0, every sampled token is the most likely of its top_logprobs.
    With capability logprobs: at temperature 0 with neutral penalties, no sampled token is more
    than 0.001 nats less likely than one of its top_logprobs.

    Greedy decoding is argmax; a sampled token below an alternative means the temperature was not
    applied, or the logprobs are not the distribution sampled from."""
    exchange = await greedy_logprobs(ctx)
    entries = _entries(exchange)
    if not any(e["top_logprobs"] for e in entries):
        raise CheckSkipped("no token has top_logprobs to compare with (lp_count reports it)")
    found = _not_argmax(entries)
    if found:
        position, entry = found
        raise CheckFailed(
            f"at temperature 0, token {position} is not the most likely one",
            expected="the argmax of the distribution (top_logprobs[*].logprob <= its logprob)",
            received=_describe(entry),
            exchange=exchange,
        )


@check(group="sampling", severity="must", capability="ext")
async def top_k1_equals_greedy(ctx: Context) -> None:
    """top_k=1 at temperature 1 gives the temperature 0 answer (or argmax tokens).
    With capability ext: top_k 1 at temperature 1 gives the temperature-0 answer, or (with
    logprobs) an answer whose every token is the argmax of its own distribution.

    Engines differ on top_k 1: some take it as "no top-k" (as they take 0 and -1)."""
    with_logprobs = "logprobs" in ctx.endpoint.capabilities
    off: dict[str, Any] = {} if with_logprobs else {"logprobs": None, "top_logprobs": None}
    if with_logprobs:
        reference = await greedy_logprobs(ctx)
    else:
        plain = logprobs_request(ctx, **off)
        reference = await ctx.shared("sampling:greedy-plain", lambda: ctx.chat(plain))
    exchange = await ctx.chat(logprobs_request(ctx, temperature=1.0, top_k=1, seed=SEED, **off))
    expected, received = _content(reference), _content(exchange)
    if received == expected:
        return
    # Batched GPU engines are not bit-reproducible: a different answer still passes when each
    # of its tokens is the argmax of its own distribution.
    if with_logprobs and not _not_argmax(_entries(exchange)):
        return
    raise CheckFailed(
        "top_k=1 at temperature 1 did not sample greedily",
        expected=f"the temperature 0 answer {str(expected)[:200]!r}",
        received=repr(str(received)[:200]),
        exchange=exchange,
    )


def _sampled(ctx: Context, key: str, **overrides: Any) -> Any:
    body = _sampled_request(ctx, **overrides)
    return ctx.shared(f"sampling:{key}", lambda: ctx.chat(body))


def _inconclusive(decided: int, what: str) -> None:
    if not decided:
        raise CheckSkipped(f"inconclusive: top_logprobs could not bound {what} at any token")


@check(group="sampling", severity="must", capability="sampling")
async def sampled_in_topk(ctx: Context) -> None:
    """At temperature 1 with top_k=2, every sampled token is one of the 2 most likely.
    With ext and logprobs too: each sampled token's logprob is at least the 2nd largest of its
    top_logprobs."""
    _require(ctx, "ext", "logprobs")
    exchange = await _sampled(ctx, "top_k", top_k=TOP_K, top_logprobs=TOP_K)
    decided = 0
    for position, entry in enumerate(_entries(exchange)):
        top = sorted((t["logprob"] for t in entry["top_logprobs"]), reverse=True)
        if len(top) < TOP_K:
            continue
        decided += 1
        if entry["logprob"] < top[TOP_K - 1] - TOL:
            raise CheckFailed(
                f"top_k={TOP_K} sampled token {position} from outside the top {TOP_K}",
                expected=f"a logprob >= the smallest of the top {TOP_K}, {top[TOP_K - 1]:.3f}",
                received=_describe(entry),
                exchange=exchange,
            )
    _inconclusive(decided, f"the top {TOP_K}")


@check(group="sampling", severity="must", capability="sampling")
async def sampled_in_nucleus(ctx: Context) -> None:
    """At temperature 1 with top_p=0.5, no sampled token has more than 0.5 mass above it.
    With logprobs too: the listed tokens more likely than a sampled token hold at most 0.5 of the
    probability; tokens the top 5 cannot bound, and truncated (processed) logprobs, are
    inconclusive."""
    _require(ctx, "logprobs")
    exchange = await _sampled(ctx, "top_p", top_p=TOP_P, top_logprobs=5)
    entries = _entries(exchange)
    if any(t["logprob"] <= -1000 for e in entries for t in e["top_logprobs"]):
        raise CheckSkipped(
            "inconclusive: the logprobs are truncated (processed, not raw), so the nucleus "
            "cannot be computed from them"
        )
    decided = 0
    for position, entry in enumerate(entries):
        top = [t["logprob"] for t in entry["top_logprobs"]]
        if not top:
            continue
        above = sum(math.exp(lp) for lp in top if lp > entry["logprob"] + 1e-6)
        listed = entry["logprob"] >= min(top) - 1e-6  # every more likely token is listed
        if not listed and above <= TOP_P + TOL:
            continue  # unlisted more likely tokens might push it over: undecided
        decided += 1
        if above > TOP_P + TOL:
            raise CheckFailed(
                f"top_p={TOP_P} sampled token {position} with {above:.3f} of mass above it",
                expected=f"at most {TOP_P} of probability above a sampled token",
                received=_describe(entry),
                exchange=exchange,
            )
    _inconclusive(decided, "the nucleus")


@check(group="sampling", severity="must", capability="sampling")
async def sampled_above_min_p(ctx: Context) -> None:
    """At temperature 1 with min_p=0.3, each sampled token has >= 0.3 x the top probability.
    With ext and logprobs too: each sampled token has at least 0.3 x the probability of the most
    likely one."""
    _require(ctx, "ext", "logprobs")
    exchange = await _sampled(ctx, "min_p", min_p=MIN_P, top_logprobs=2)
    decided = 0
    for position, entry in enumerate(_entries(exchange)):
        top = [t["logprob"] for t in entry["top_logprobs"]]
        if not top:
            continue
        decided += 1
        floor = max(top) + math.log(MIN_P)
        if entry["logprob"] < floor - TOL:
            raise CheckFailed(
                f"min_p={MIN_P} sampled token {position} below the min_p floor",
                expected=f"a logprob >= max + ln({MIN_P}) = {floor:.3f}",
                received=_describe(entry),
                exchange=exchange,
            )
    _inconclusive(decided, "the min_p floor")


def _most_repeated(text: str) -> tuple[str, int]:
    """The word or symbol ``text`` repeats most (case folded), and how often."""
    counts = Counter(_PIECE.findall(text.lower())).most_common(1)
    return counts[0] if counts else ("", 0)


@check(group="sampling", severity="must", capability="sampling")
async def penalties_lower_repetition(ctx: Context) -> None:
    """Greedy answers with frequency/presence penalty +2 repeat less than with -2.
    Greedy answers to "write the word cat forty times" with frequency_penalty and presence_penalty
    at +2 and at -2 differ, and the +2 answer repeats its most repeated word less often than the -2
    one (when that repeats 4+ times)."""

    async def answer(sign: float) -> Exchange:
        body = ctx.request(
            messages=_REPEAT,
            temperature=0,
            max_tokens=PENALTY_MAX_TOKENS,
            frequency_penalty=sign * PENALTY,
            presence_penalty=sign * PENALTY,
        )
        return await ctx.chat(body)

    rewarded, penalized = await asyncio.gather(answer(-1.0), answer(1.0))
    loose, strict = _content(rewarded), _content(penalized)
    if not isinstance(loose, str) or not isinstance(strict, str):
        raise CheckFailed(
            "an answer has no text content",
            expected="text",
            received=f"{loose!r} with -{PENALTY}, {strict!r} with +{PENALTY}",
            exchange=penalized,
        )
    # The prompt asks for 40 repeats in 32 tokens: penalties of +-2 on every repeat must
    # change a greedy answer somewhere, whatever the engine counts (output or prompt tokens).
    if loose == strict and loose:
        raise CheckFailed(
            f"frequency/presence penalties of -{PENALTY} and +{PENALTY} give the same answer",
            expected="a greedy answer that the penalties change",
            received=repr(strict[:200]),
            exchange=penalized,
            pair=rewarded,
        )
    word, repeats = _most_repeated(loose)
    if repeats >= 4 and _most_repeated(strict)[1] >= repeats:
        raise CheckFailed(
            f"penalty +{PENALTY} repeats as much as penalty -{PENALTY}",
            expected=f"fewer repeats than the {repeats} x {word!r} of the -{PENALTY} answer",
            received=f"{_most_repeated(strict)[1]} x {_most_repeated(strict)[0]!r} in "
            f"{strict[:200]!r}",
            exchange=penalized,
            pair=rewarded,
        )
