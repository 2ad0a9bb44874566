"""Reference mode: the endpoint serves the model of ``chatcompat export-model``, so the suite
knows the exact distributions it must sample from."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from conformance._assertions import json_body, require_status
from conformance._context import Context
from conformance._oracle import PARTIAL, STOP, chi_square_pvalue, load_oracle
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = ["SAMPLING_CASES", "ref_greedy_chain", "ref_logprobs", "ref_sampling_fit"]

ALPHA = 0.001  # family-wise false-alarm rate of ref_sampling_fit (Bonferroni over its cases)
LOGPROB_TOLERANCE = 0.02  # nats; float32 engines agree far closer, bf16 ones within this
GREEDY_TOKENS = 24
# The second greedy chain: penalties change it after the first tokens, where a first-token case
# cannot see them (llama-cpp-python penalises the output only).
GREEDY_PENALTIES = {"repetition_penalty": 1.3, "frequency_penalty": 0.5, "presence_penalty": 0.5}
# First-token cases: each exercises a parameter, and together they tell the engines' sampling
# semantics apart (min_p before top_p: vllm; temperature last: llamacpp; penalties over the
# prompt: llamacpp, not llama-cpp-python).
SAMPLING_CASES: dict[str, dict[str, Any]] = {
    "temperature-0.7": {"temperature": 0.7},
    "top_k-3": {"temperature": 1.0, "top_k": 3},
    "top_p-0.9": {"temperature": 1.0, "top_p": 0.9},
    "min_p-0.05": {"temperature": 1.0, "min_p": 0.05},
    "min_p-0.1-top_p-0.85": {"temperature": 1.0, "min_p": 0.1, "top_p": 0.85},
    "temperature-0.5-top_p-0.85": {"temperature": 0.5, "top_p": 0.85},
    "repetition-1.3": {"temperature": 1.0, "repetition_penalty": 1.3},
    "frequency-presence": {"temperature": 1.0, "frequency_penalty": 1.5, "presence_penalty": 1.0},
    "logit_bias-ban": {"temperature": 1.0, "logit_bias": {"10": -100}},  # 10 is "\n"
}
EXT_FIELDS = ("top_k", "min_p", "repetition_penalty")  # capability ext: not OpenAI's fields

# llama.cpp's servers fill an omitted field with their own default, not the neutral value
# (llama-server, common/common.h: top_k 40, top_p 0.95, min_p 0.05; llama-cpp-python,
# llama_cpp/server/types.py: the same and repeat_penalty 1.1), and read the repetition penalty
# as repeat_penalty only (vLLM's repetition_penalty is ignored). In those dialects a reference
# request states every parameter, in both spellings, so its answer depends on it alone.
_LLAMA_CPP_NEUTRAL: dict[str, Any] = {"top_k": 0, "top_p": 1.0, "min_p": 0.0}


def _reference_request(ctx: Context, **fields: Any) -> dict[str, Any]:
    """``ctx.request(**fields)``, every sampling parameter stated for the llama.cpp dialects."""
    body = ctx.request(**fields)
    if ctx.endpoint.sampling not in ("llamacpp", "llama-cpp-python"):
        return body
    penalty = body.get("repetition_penalty", 1.0)
    return {**_LLAMA_CPP_NEUTRAL, **body, "repetition_penalty": penalty, "repeat_penalty": penalty}


async def _oracle(ctx: Context) -> Any:
    assert ctx.endpoint.reference is not None  # the capability says so
    return await asyncio.to_thread(load_oracle, ctx.endpoint.reference)


@check(group="sampling", severity="must", capability="reference")
async def ref_greedy_chain(ctx: Context) -> None:
    """At temperature 0 the answer is the reference model's greedy chain, token for token.
    With --reference: the temperature-0 answer is, token for token, the greedy chain of the
    exported model the endpoint serves, plain and with frequency and presence penalties (and the
    repetition penalty when ext is claimed)."""
    # The penalised chain: the claimed semantics decide which tokens the penalties count.
    oracle = await _oracle(ctx)
    claimed = ctx.endpoint.capabilities
    penalised = {
        k: v for k, v in GREEDY_PENALTIES.items() if k not in EXT_FIELDS or "ext" in claimed
    }
    for penalties in ({}, penalised):
        body = _reference_request(ctx, temperature=0, max_tokens=GREEDY_TOKENS, **penalties)
        exchange = await ctx.chat(body)
        require_status(exchange, 200)
        text = json_body(exchange)["choices"][0]["message"].get("content") or ""
        expected = await asyncio.to_thread(
            oracle.greedy_text, body, GREEDY_TOKENS, ctx.endpoint.sampling
        )
        if text != expected:
            raise CheckFailed(
                "the greedy answer differs from the reference model's greedy chain"
                + (f" with penalties {penalties}" if penalties else ""),
                expected=repr(expected),
                received=repr(text),
                exchange=exchange,
            )


def _entry_id(oracle: Any, entry: dict[str, Any]) -> int | None:
    data = bytes(entry["bytes"]) if entry.get("bytes") else str(entry["token"]).encode()
    token: int | None = oracle.token_id(data)
    return token


def _sampled_ids(oracle: Any, entries: list[dict[str, Any]], chain: list[int]) -> list[int | None]:
    """The id of each sampled entry: by its bytes (or text), except where the greedy chain has a
    token that is not a whole UTF-8 character: vLLM shows such a token as "" with bytes [], or
    with the bytes of the whole character it completes (vllm/v1/engine/logprobs.py:
    _correct_decoded_token), so it is known by its position."""
    ids: list[int | None] = []
    for position, entry in enumerate(entries):
        greedy = chain[position] if position < len(chain) else None
        partial = greedy is not None and oracle.category(greedy) == PARTIAL
        ids.append(greedy if partial else _entry_id(oracle, entry))
    return ids


def _candidate_problem(oracle: Any, candidate: dict[str, Any], row: list[float]) -> str | None:
    """Why ``candidate`` (a top_logprobs entry) does not carry its token's raw logprob, or None.
    A candidate whose bytes name no token (a part of a character, shown as "" or as the whole
    character) must carry the logprob of some token that is not a whole character."""
    token = _entry_id(oracle, candidate)
    logprob = candidate["logprob"]
    if token is not None:
        ok = abs(row[token] - logprob) <= LOGPROB_TOLERANCE
        return None if ok else f"{row[token]:.4f} (raw log-softmax)"
    partial = [i for i in range(len(row)) if oracle.category(i) == PARTIAL]
    if any(abs(row[i] - logprob) <= LOGPROB_TOLERANCE for i in partial):
        return None
    return "a token of the reference vocabulary (no token, whole or part of a character, has it)"


@check(group="sampling", severity="must", capability="reference")
async def ref_logprobs(ctx: Context) -> None:
    """Returned logprobs (sampled and top) equal the reference model's raw logprobs.
    With --reference: the sampled and top logprobs equal the raw log-softmax of the exported model
    within 0.02 nats; only when the endpoint claims logprobs too.

    A token that is not a whole UTF-8 character is known by its place in the greedy chain, or by
    its logprob among such tokens: vLLM shows it as "" or as the character it completes."""
    if "logprobs" not in ctx.endpoint.capabilities:
        raise CheckSkipped("needs capability 'logprobs' as well")
    oracle = await _oracle(ctx)
    body = _reference_request(ctx, temperature=0, max_tokens=12, logprobs=True, top_logprobs=5)
    exchange = await ctx.chat(body)
    require_status(exchange, 200)
    entries = (json_body(exchange)["choices"][0].get("logprobs") or {}).get("content") or []
    chain = await asyncio.to_thread(oracle.greedy_ids, body, 12, ctx.endpoint.sampling)
    ids = _sampled_ids(oracle, entries, chain)
    if not entries or None in ids:
        raise CheckFailed(
            "the logprobs do not name tokens of the reference vocabulary",
            expected="one entry per token, with the token's bytes",
            received=f"{len(entries)} entries, unknown at positions "
            f"{[i for i, t in enumerate(ids) if t is None]}",
            exchange=exchange,
        )
    known = [t for t in ids if t is not None]
    rows = await asyncio.to_thread(oracle.raw_logprobs, body, known)
    for position, (entry, token, row) in enumerate(zip(entries, known, rows, strict=True)):
        problems = [(entry, f"{row[token]:.4f} (raw log-softmax)")]
        if abs(row[token] - entry["logprob"]) <= LOGPROB_TOLERANCE:
            problems = []
        problems += [
            (c, problem)
            for c in entry.get("top_logprobs") or []
            if (problem := _candidate_problem(oracle, c, row)) is not None
        ]
        if problems:
            candidate, expected = problems[0]
            raise CheckFailed(
                f"the logprob of {candidate.get('token')!r} at position {position} is off",
                expected=expected,
                received=f"{candidate.get('logprob')}",
                exchange=exchange,
            )


def _category(choice: dict[str, Any]) -> str:
    """What a one-token answer says: STOP (an end token), PARTIAL (a byte that is not a whole
    character: held back or shown as U+FFFD), or the token's text."""
    content = (choice.get("message") or {}).get("content") or ""
    if not content:
        return STOP if choice.get("finish_reason") == "stop" else PARTIAL
    return PARTIAL if content == "\ufffd" else content


async def _samples(ctx: Context, body: dict[str, Any], count: int) -> tuple[Counter[str], Any]:
    """``count`` one-token answers to ``body`` (in requests of up to 100 choices when the
    endpoint claims n > 1), by category, and the last exchange."""
    per_request = min(100, count) if "n" in ctx.endpoint.capabilities else 1
    # llama-cpp-python seeds a request without seed from the previous request's seed
    # (llama_cpp/llama.py Llama._create_completion: random.Random(self._seed).randint), so a
    # sample following another check's seeded request repeats that request's draw: there each
    # sample carries its own seed, which keeps the samples independent.
    seeds = random.Random(repr(body)) if ctx.endpoint.sampling == "llama-cpp-python" else None
    counts: Counter[str] = Counter()
    exchange = None
    while sum(counts.values()) < count:
        sent = {**body, "seed": seeds.getrandbits(31)} if seeds is not None else body
        exchange = await ctx.chat({**sent, "n": per_request} if per_request > 1 else sent)
        require_status(exchange, 200)
        counts.update(_category(c) for c in json_body(exchange)["choices"])
    return counts, exchange


def _cases(ctx: Context) -> dict[str, dict[str, Any]]:
    """The SAMPLING_CASES the endpoint can be asked: a case with top_k, min_p or
    repetition_penalty (not OpenAI's fields) only when it claims capability ext."""
    if "ext" in ctx.endpoint.capabilities:
        return SAMPLING_CASES
    return {n: p for n, p in SAMPLING_CASES.items() if not set(p) & set(EXT_FIELDS)}


async def _fit_case(
    ctx: Context, oracle: Any, name: str, params: dict[str, Any], alpha: float
) -> CheckFailed | None:
    """The failure of case ``name`` (sampled tokens outside the allowed set, frequencies that do
    not fit at level ``alpha``, or an answer that is not 200), None when it fits."""
    sampling = ctx.endpoint.sampling
    body = _reference_request(ctx, max_tokens=1, **params)
    expected = await asyncio.to_thread(oracle.first_token_distribution, body, sampling)
    try:
        counts, exchange = await _samples(ctx, body, ctx.endpoint.reference_samples)
    except CheckFailed as failure:
        return CheckFailed(
            f"case {name}: {failure.message}",
            expected=failure.expected,
            received=failure.received,
            exchange=failure.exchange,
        )
    total = sum(counts.values())
    outside = sorted(c for c in counts if expected.get(c, 0.0) == 0.0)
    if outside:
        return CheckFailed(
            f"case {name}: sampled tokens that {sampling}'s rules exclude",
            expected=f"only {sorted(expected)[:12]}",
            received=", ".join(f"{c!r} x{counts[c]}" for c in outside),
            exchange=exchange,
        )
    big = [c for c, p in expected.items() if p * total >= 5]
    observed = [counts[c] for c in big] + [total - sum(counts[c] for c in big)]
    wanted = [expected[c] * total for c in big] + [total * (1 - sum(expected[c] for c in big))]
    if wanted[-1] < 1e-9:
        observed, wanted = observed[:-1], wanted[:-1]
    p_value = chi_square_pvalue(observed, wanted)
    if p_value >= alpha:
        return None
    top = sorted(big, key=lambda c: -expected[c])[:5]
    return CheckFailed(
        f"case {name}: frequencies do not fit {sampling}'s distribution "
        f"(chi-square p = {p_value:.2e} < {alpha:.1e}, {total} samples)",
        expected=", ".join(f"{c!r} {expected[c]:.3f}" for c in top),
        received=", ".join(f"{c!r} {counts[c] / total:.3f}" for c in top),
        exchange=exchange,
    )


@check(group="sampling", severity="must", capability="reference")
async def ref_sampling_fit(ctx: Context) -> None:
    """Sampled first tokens fit the reference sampler's distribution, parameter by parameter.
    With --reference: for nine first-token cases (temperature, top_k, top_p, min_p, min_p with
    top_p, temperature with top_p, repetition, frequency + presence, a logit_bias ban; the top_k,
    min_p and repetition cases only with ext) the sampled tokens never fall outside the set the
    claimed sampling semantics allows, and their frequencies fit its distribution (Pearson
    chi-square, family-wise alpha 0.001, Bonferroni over the cases). Every case runs; a failure
    names each case that failed."""
    oracle = await _oracle(ctx)
    cases = _cases(ctx)
    alpha = ALPHA / len(cases)
    failures = [
        failure
        for name, params in cases.items()
        if (failure := await _fit_case(ctx, oracle, name, params, alpha)) is not None
    ]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise CheckFailed(
            f"{len(failures)} of {len(cases)} cases failed: "
            + "; ".join(f.message for f in failures),
            expected=" | ".join(str(f.expected) for f in failures),
            received=" | ".join(str(f.received) for f in failures),
            exchange=failures[0].exchange,
        )
