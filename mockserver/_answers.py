"""Answers made from the provider's documented examples (``mockserver/data/seed``).

The examples are templates: each answer gets a fresh id, the current time and the requested
model; content, filters and framing are the provider's. ``max_tokens`` (or
``max_completion_tokens``) truncates with finish_reason "length", ``stop`` cuts the text, ``n``
makes n choices and ``stream_options.include_usage`` adds the usage chunk.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mockserver._tokens import count_prompt_tokens, pieces

__all__ = ["Seed", "completion", "completion_limit", "load_seed", "stream_chunks"]


@dataclass(frozen=True)
class Seed:
    completions: tuple[dict[str, Any], ...]  # documented non-stream answers
    chunks: tuple[dict[str, Any], ...]  # documented stream, one chunk per event, [DONE] left out


@functools.cache
def load_seed() -> Seed:
    """The provider examples shipped with the package."""
    folder = resources.files("mockserver") / "data" / "seed"
    completions = tuple(
        json.loads((folder / name).read_text(encoding="utf-8"))
        for name in ("response.json", "response-2.json")
    )
    chunks = []
    for line in (folder / "stream.sse").read_text(encoding="utf-8").splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunks.append(json.loads(line.removeprefix("data: ")))
    return Seed(completions, tuple(chunks))


def completion_limit(request: dict[str, Any]) -> int | None:
    """The completion token limit: max_completion_tokens, else max_tokens, else none."""
    for key in ("max_completion_tokens", "max_tokens"):
        if request.get(key) is not None:
            return int(request[key])
    return None


def _stops(request: dict[str, Any]) -> list[str]:
    stop = request.get("stop")
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def _cut_at_stop(text: str, stops: list[str]) -> str | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(hits)] if hits else None


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }


def completion(request: dict[str, Any], *, completion_id: str, created: int) -> dict[str, Any]:
    """A ``chat.completion`` answering ``request`` with the seed answers (choice i uses
    answer i mod 2, so that n > 1 choices differ)."""
    seed = load_seed()
    limit = completion_limit(request)
    stops = _stops(request)
    choices = []
    generated = 0
    for index in range(request.get("n") or 1):
        template = seed.completions[index % len(seed.completions)]
        choice = copy.deepcopy(template["choices"][0])
        text = choice["message"]["content"]
        tokens = pieces(text)
        used, finish = len(tokens) + 1, "stop"  # + 1: the end-of-turn token
        if limit is not None and limit < used:
            text, used, finish = "".join(tokens[:limit]), limit, "length"
        cut = _cut_at_stop(text, stops)
        if cut is not None:
            text, used, finish = cut, len(pieces(cut)) + 1, "stop"
        choice.update(index=index, finish_reason=finish)
        choice["message"]["content"] = text
        choices.append(choice)
        generated += used
    template = seed.completions[0]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": request["model"],
        "choices": choices,
        "usage": _usage(count_prompt_tokens(request["messages"]), generated),
        "system_fingerprint": template.get("system_fingerprint"),
    }


def stream_chunks(
    request: dict[str, Any], *, completion_id: str, created: int
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a stream answering ``request``: the seed
    stream per choice (role chunk first, one chunk per token), choices interleaved."""
    seed = load_seed()
    limit = completion_limit(request)
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    meta = {"id": completion_id, "created": created, "model": request["model"]}
    role, *content = seed.chunks
    if limit is not None and limit < len(content):
        content = copy.deepcopy(content[:limit])
        content[-1]["choices"][0]["finish_reason"] = "length"
    per_choice = [role, *content]
    chunks: list[dict[str, Any]] = []
    for template in per_choice:
        for index in range(request.get("n") or 1):
            chunk = {**copy.deepcopy(template), **meta}
            chunk["choices"][0]["index"] = index
            if include_usage:
                chunk["usage"] = None
            chunks.append(chunk)
    if include_usage:
        generated = len(content) * (request.get("n") or 1)
        prompt = count_prompt_tokens(request["messages"])
        last = {k: v for k, v in chunks[-1].items() if k not in ("choices", "usage")}
        chunks.append({**last, "choices": [], "usage": _usage(prompt, generated)})
    return chunks
