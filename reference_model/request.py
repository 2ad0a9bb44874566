"""A chat completion request body as the reference model's :class:`GenerationRequest`, by the
shared request rules (``chatcompat.request_rules``): what generate mode runs and what the suite's
oracle samples with."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from chatcompat.request_rules import completion_limit, sampling_fields, stop_strings

from .generate import GenerationRequest
from .sampling import Dialect, SamplingParams

__all__ = ["chat_messages", "generation_request", "sampling_params"]


def sampling_params(body: Mapping[str, Any], vocab_size: int) -> SamplingParams:
    """The sampler's parameters for a validated request ``body`` and a model of
    ``vocab_size`` tokens (``chatcompat.request_rules.sampling_fields``)."""
    return SamplingParams(**sampling_fields(body, vocab_size))


def chat_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` as the chat format renders them: each assistant tool call reduced to a
    function name and its arguments as JSON text."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            functions = [(c.get("function") or {}) if isinstance(c, dict) else {} for c in calls]
            message = {
                **message,
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": str(f.get("name") or ""),
                            "arguments": f["arguments"]
                            if isinstance(f.get("arguments"), str)
                            else json.dumps(f.get("arguments") or {}),
                        },
                    }
                    for f in functions
                ],
            }
        out.append(dict(message))
    return out


def generation_request(
    body: Mapping[str, Any], *, vocab_size: int, dialect: Dialect = "vllm"
) -> GenerationRequest:
    """What the reference model generates for a validated chat completion request ``body``
    (integral numbers already ints: ``chatcompat.request_rules.integral``), sampling as
    ``dialect`` does with a vocabulary of ``vocab_size`` tokens."""
    return GenerationRequest(
        messages=chat_messages(body["messages"]),
        tools=body.get("tools"),
        tool_choice=body.get("tool_choice"),
        parallel_tool_calls=body.get("parallel_tool_calls"),
        response_format=body.get("response_format"),
        sampling=sampling_params(body, vocab_size),
        max_tokens=completion_limit(body),
        stop=stop_strings(body),
        n=int(body.get("n") or 1),
        top_logprobs=int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0,
        dialect=dialect,
    )
