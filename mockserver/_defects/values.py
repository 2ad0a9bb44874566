"""Defects of well-typed but wrong values: ``created`` in the wrong unit or time, choice
indices that count chunks, usage that counts one choice of n, and logprobs that break with
sampling parameters. Their hooks span stages (``request``, ``completion``, ``chunks``), so they
are grouped here by what they break, not by their first stage.

The logprobs defects act only on requests that ask for logprobs together with a sampling
filter or penalty (``top_p`` < 1, ``top_k`` > 0, ``min_p`` > 0, a presence, frequency or
repetition penalty): the request hook marks such a request in a context variable that the
answer hook of the same request (the same task) reads.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

from mockserver._defects.defect import Defect, Hook
from mockserver._defects.hooks import choices, copied
from mockserver._errors import ApiError

__all__ = ["DEFECTS", "sampling_filtered"]

_MODEL_DATE = 1731542400  # 2024-11-14T00:00:00Z, the listed models' created


def _created(value: Any) -> Hook:
    """A completion or chunks hook giving the answer (every chunk) ``value()`` as its created,
    the same in every chunk."""

    def hook(body: Any) -> Any:
        created = value()
        if isinstance(body, list):
            return [{**c, "created": created} for c in body]
        return {**body, "created": created}

    return hook


def _field(name: str, value: Any) -> Hook:
    """A completion or chunks hook setting ``name`` to ``value`` in the answer (every chunk)."""

    def hook(body: Any) -> Any:
        if isinstance(body, list):
            return [{**c, name: value} for c in body]
        return {**body, name: value}

    return hook


def _indices_count_chunks(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**c, "choices": [{**x, "index": position} for x in choices(c)]} if choices(c) else c
        for position, c in enumerate(chunks)
    ]


def _one_choice(usage: dict[str, Any], n: int) -> dict[str, Any]:
    """``usage`` of n choices cut to what one of them spent (the total kept consistent)."""
    completion = max(1, usage["completion_tokens"] // n)
    return {
        **usage,
        "completion_tokens": completion,
        "total_tokens": usage["prompt_tokens"] + completion,
    }


def _usage_of_one_choice(value: Any) -> Any:
    if isinstance(value, dict):  # a non-stream answer
        n, usage = len(value.get("choices") or []), value.get("usage")
        return {**value, "usage": _one_choice(usage, n)} if n > 1 and usage else value
    n = len({x.get("index") for c in value for x in choices(c)})
    return [
        {**c, "usage": _one_choice(c["usage"], n)} if n > 1 and c.get("usage") else c for c in value
    ]


def sampling_filtered(body: dict[str, Any]) -> bool:
    """Whether a request asks for logprobs together with a sampling filter or a penalty."""

    def number(key: str, neutral: float) -> bool:
        value = body.get(key)
        return isinstance(value, int | float) and not isinstance(value, bool) and value != neutral

    filtered = (
        number("top_p", 1)
        or (number("top_k", 0) and body.get("top_k") != -1)
        or number("min_p", 0)
        or number("presence_penalty", 0)
        or number("frequency_penalty", 0)
        or number("repetition_penalty", 1)
    )
    return bool(body.get("logprobs")) and filtered


def _crash_when_filtered(body: dict[str, Any]) -> dict[str, Any]:
    if sampling_filtered(body):
        raise ApiError(500, "Out of range float values are not JSON compliant")
    return body


def _infinite_when_filtered() -> dict[str, Hook]:
    """Hooks giving the last top_logprobs alternative of every token -inf (written by
    json.dumps as -Infinity) in the answers to sampling-filtered logprobs requests."""
    marked: contextvars.ContextVar[bool] = contextvars.ContextVar("filtered", default=False)

    def mark(body: dict[str, Any]) -> dict[str, Any]:
        marked.set(sampling_filtered(body))
        return body

    def last_infinite(items: list[dict[str, Any]]) -> None:
        for choice in items:
            for entry in (choice.get("logprobs") or {}).get("content") or []:
                if entry.get("top_logprobs"):
                    entry["top_logprobs"][-1]["logprob"] = float("-inf")

    def in_answer(body: dict[str, Any]) -> None:
        last_infinite(body.get("choices") or [])

    def in_chunks(chunks: list[dict[str, Any]]) -> None:
        for chunk in chunks:
            last_infinite(choices(chunk))

    answer, stream = copied(in_answer), copied(in_chunks)
    return {
        "request": mark,
        "completion": lambda body: answer(body) if marked.get() else body,
        "chunks": lambda chunks: stream(chunks) if marked.get() else chunks,
    }


def _reverse_alternatives(body: dict[str, Any]) -> None:
    for choice in body.get("choices") or []:
        for entry in (choice.get("logprobs") or {}).get("content") or []:
            entry["top_logprobs"].reverse()


DEFECTS = (
    Defect(
        "created-milliseconds",
        "created is the Unix time in milliseconds, not seconds (answers and chunks).",
        {
            "completion": _created(lambda: int(time.time() * 1000)),
            "chunks": _created(lambda: int(time.time() * 1000)),
        },
        report="https://github.com/EricLBuehler/mistral.rs/issues/1805",
    ),
    Defect(
        "created-fixed",
        "created is a fixed date (the model's, 2024-11-14), not the time of the answer.",
        {"completion": _created(lambda: _MODEL_DATE), "chunks": _created(lambda: _MODEL_DATE)},
    ),
    Defect(
        "chunk-id-empty",
        'Every stream chunk says id "" (the same in each, so only its emptiness is wrong).',
        {"chunks": _field("id", "")},
        report="https://github.com/huggingface/text-generation-inference/issues/1782",
    ),
    Defect(
        "model-empty",
        'Answers and stream chunks say model "" instead of the model that answered.',
        {"completion": _field("model", ""), "chunks": _field("model", "")},
        report="https://github.com/vllm-project/vllm/pull/15938",
    ),
    Defect(
        "choice-index-counts-chunks",
        "A streamed choice's index counts the chunks (0, 1, 2, ...), not the choices.",
        {"chunks": _indices_count_chunks},
        report="https://github.com/microsoft/foundry-local/issues/263",
    ),
    Defect(
        "usage-counts-one-choice",
        "With n > 1, completion_tokens counts one choice, not the sum (answers and usage chunks).",
        {"completion": _usage_of_one_choice, "chunks": _usage_of_one_choice},
    ),
    Defect(
        "logprobs-500-with-sampling",
        "logprobs with top_p < 1, top_k, min_p or a penalty get 500 (a -inf the encoder refuses).",
        {"request": _crash_when_filtered},
    ),
    Defect(
        "logprobs-minus-infinity",
        "logprobs with top_p < 1, top_k, min_p or a penalty write a -inf logprob as -Infinity.",
        stateful=_infinite_when_filtered,
    ),
    Defect(
        "top-logprobs-unsorted",
        "Non-stream top_logprobs come least likely first (ascending logprob).",
        {"completion": copied(_reverse_alternatives)},
    ),
)
