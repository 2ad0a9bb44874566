"""Logprobs together with sampling parameters (group "logprobs"): no 5xx, only finite numbers,
top_logprobs sorted.

A server that reports logprobs after its sampling filters (top_p, top_k, min_p) or penalties
meets ``-inf`` for every token the filter removed: written by Python's ``json.dumps`` it is
``-Infinity``, which is not JSON (RFC 8259 section 6), and a strict encoder refuses it with a
500 ("Out of range float values are not JSON compliant"). OpenAI clamps such values to -9999.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from typing import Any

from conformance import _json as strict_json
from conformance._checks.logprobs import entries_of, greedy_logprobs, logprobs_request
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check
from conformance._sse import parse_events

__all__ = [
    "SAMPLED_TOP",
    "STREAMED_NAME",
    "lp_sampling_finite",
    "lp_top_sorted",
    "sampled_logprobs",
]

SAMPLED_TOP = 5  # top_logprobs of the sampled requests: more alternatives than a filter keeps
# name -> the sampling parameters sent with logprobs; "ext" ones only where ext is claimed
_STANDARD: dict[str, dict[str, Any]] = {
    "top_p": {"top_p": 0.5},
    "penalties": {"presence_penalty": 1.5, "frequency_penalty": 1.5},
}
_EXT: dict[str, dict[str, Any]] = {
    "top_k": {"top_k": 2},
    "min_p": {"min_p": 0.3},
    "repetition_penalty": {"repetition_penalty": 1.3},
}
_STREAMED = "top_p"  # the one also sent with stream: true, as STREAMED_NAME
STREAMED_NAME = f"{_STREAMED}, streamed"


def _bodies(ctx: Context) -> dict[str, dict[str, Any]]:
    """name -> the logprobs request with that name's sampling parameters (temperature 0.8)."""
    cases = {**_STANDARD, **(_EXT if "ext" in ctx.endpoint.capabilities else {})}
    # seeded where the endpoint claims seed, so that a verdict on sampled tokens is repeatable
    seed = {"seed": 4242} if "seed" in ctx.endpoint.capabilities else {}
    bodies = {
        name: logprobs_request(ctx, temperature=0.8, top_logprobs=SAMPLED_TOP, **seed, **params)
        for name, params in cases.items()
    }
    bodies[STREAMED_NAME] = {**bodies[_STREAMED], "stream": True}
    return bodies


async def sampled_logprobs(ctx: Context) -> list[tuple[str, Exchange]]:
    """The run's shared logprobs exchanges with sampling parameters, as (name, exchange)."""
    bodies = _bodies(ctx)

    def send(body: dict[str, Any]) -> Any:
        return lambda: ctx.chat(body)

    exchanges = await asyncio.gather(
        *(ctx.shared(f"logprobs:sampling:{name}", send(body)) for name, body in bodies.items())
    )
    return list(zip(bodies, exchanges, strict=True))


def _documents(name: str, exchange: Exchange) -> list[tuple[str, Any]]:
    """(where, parsed JSON) of the 200 answer to the request ``name``: its body, or each event
    of the stream; raises ValueError naming the place when one is not JSON (NaN and Infinity
    are not)."""
    if name != STREAMED_NAME:
        try:
            return [("the body", strict_json.loads(exchange.body))]
        except ValueError as exc:
            raise ValueError(f"the body: {exc}") from None
    found = []
    for position, event in enumerate(parse_events(exchange.body)[0]):
        if event.data == "[DONE]":
            continue
        try:
            found.append((f"event {position}", strict_json.loads(event.data)))
        except ValueError as exc:
            raise ValueError(f"event {position}: {exc}: {event.data[:160]}") from None
    return found


def _entries(exchange: Exchange, document: Any) -> list[dict[str, Any]]:
    """The logprobs.content entries of every choice of an answer or chunk (checked shapes)."""
    choices = document.get("choices") if isinstance(document, dict) else None
    return [
        entry
        for choice in (choices if isinstance(choices, list) else [])
        if isinstance(choice, dict) and choice.get("logprobs") is not None
        for entry in entries_of(exchange, choice["logprobs"])
    ]


def _infinite(entries: list[dict[str, Any]]) -> str | None:
    for position, entry in enumerate(entries):
        for item in [entry, *entry["top_logprobs"]]:
            if not math.isfinite(item["logprob"]):
                return f"token {position}: {item['token']!r} has logprob {item['logprob']}"
    return None


def _require_finite(name: str, exchange: Exchange) -> None:
    try:
        documents = _documents(name, exchange)
    except ValueError as exc:
        raise CheckFailed(
            f"the answer to logprobs with {name} is not JSON",
            expected="finite numbers only (a -inf logprob clamped, as OpenAI's -9999)",
            received=str(exc),
            exchange=exchange,
        ) from None
    for where, document in documents:
        problem = _infinite(_entries(exchange, document))
        if problem:
            raise CheckFailed(
                f"a logprob in {where} of the answer to logprobs with {name} is not finite",
                expected="finite logprobs",
                received=problem,
                exchange=exchange,
            )


@check(group="logprobs", severity="must", capability="logprobs")
async def lp_sampling_finite(ctx: Context) -> None:
    """logprobs with top_p, top_k, min_p or penalties get answers of finite numbers, never 5xx.
    logprobs with top_logprobs 5 at temperature 0.8, together with top_p 0.5, presence and
    frequency penalties 1.5 and (with ext) top_k 2, min_p 0.3, repetition_penalty 1.3, each
    streamed or not, get no 5xx; every answer is JSON (no NaN, Infinity or -Infinity) and every
    logprob in it is finite.

    Reported: servers that take logprobs after the sampling filters meet -inf for filtered
    tokens, then write -Infinity (which JSON.parse and the SDKs refuse) or fail with 500."""
    answered = []
    for name, exchange in await sampled_logprobs(ctx):
        if exchange.status is None or exchange.status >= 500:
            raise CheckFailed(
                f"logprobs with {name} got no answer",
                expected="200 (or a 4xx refusing a parameter), never 5xx",
                received=str(exchange.status or exchange.error),
                exchange=exchange,
            )
        if exchange.status == 200:
            _require_finite(name, exchange)
            answered.append(name)
    if not answered:
        raise CheckSkipped("inconclusive: every logprobs request with sampling parameters got 4xx")


def _unsorted(entries: list[dict[str, Any]]) -> str | None:
    for position, entry in enumerate(entries):
        values = [item["logprob"] for item in entry["top_logprobs"]]
        if any(later > earlier + 1e-6 for earlier, later in itertools.pairwise(values)):
            shown = [(item["token"], item["logprob"]) for item in entry["top_logprobs"]]
            return f"token {position} ({entry['token']!r}): {json.dumps(shown)[:240]}"
    return None


@check(group="logprobs", severity="must", capability="logprobs")
async def lp_top_sorted(ctx: Context) -> None:
    """top_logprobs list the alternatives most likely first, greedy or sampled.
    In the run's greedy logprobs answer and in every answer to logprobs with sampling parameters
    (lp_sampling_finite's requests), each token's top_logprobs are in descending order of
    logprob.

    OpenAI lists the most likely tokens first; clients read top_logprobs[0] as the model's first
    choice (classifiers by logprob, confidence displays), which a list led by the sampled token,
    or in any other order, misreports."""
    greedy = await greedy_logprobs(ctx)
    for name, exchange in [("temperature 0", greedy), *await sampled_logprobs(ctx)]:
        if exchange.status != 200:
            continue  # lp_shape, lp_sampling_finite report it
        try:
            documents = _documents(name, exchange)
        except ValueError:
            continue  # lp_sampling_finite reports it
        for where, document in documents:
            problem = _unsorted(_entries(exchange, document))
            if problem:
                raise CheckFailed(
                    f"top_logprobs in {where} of the answer to logprobs with {name} are not "
                    "sorted, most likely first",
                    expected="descending logprob",
                    received=problem,
                    exchange=exchange,
                )
