"""The lenient validation levels, ``schema`` and ``off``: what they make of a request body
before an answer source answers it.

- ``schema`` accepts what OpenAI's published request schema accepts (``schemas/compatible``:
  OpenAI's ``CreateChatCompletionRequest``, openai/openai-openapi, plus the relaxations of
  ``schemas/README.md``, which only widen it), for SDK tests generated from that schema (the
  "create with all params" tests of openai-python and openai-node, whose Prism mock checks
  the schema alone) and clients that send placeholder values;
- ``off`` answers any JSON object: what the schema refuses is dropped (see :func:`repaired`),
  for fuzzers and clients under construction that want an answer whatever they send.

Either way the body is then made answerable (:func:`answerable`), and what each placeholder
value does to the answer is this:

- ``max_tokens`` / ``max_completion_tokens`` 0 (negative: 0 too): an empty answer (no content,
  no tool call) with ``finish_reason: "length"`` and 0 completion tokens;
- ``logit_bias``: keys that are no token id below ``VOCAB_SIZE`` are dropped, biases are
  clamped to [-100, 100] (the template ignores them; generate mode samples with them);
- ``seed`` outside a signed 64-bit integer: no seed;
- ``stream_options`` with ``stream: false``, ``top_logprobs`` without ``logprobs``: ignored;
- ``tool_choice`` without ``tools`` or naming no supplied tool: a text answer;
- ``n`` (1 to 128, the schema's bounds): that many choices;
- ``audio``, ``modalities``, ``prediction``, ``web_search_options``, ``metadata``, ``store``,
  ``service_tier``, ``functions`` / ``function_call``, ``verbosity``, ``reasoning_effort``,
  ``user``, unknown keys: read by no source, the answer is a text answer as without them;
- ``image_url`` and ``input_audio`` content parts: answered, the parts unread (their text
  parts count);
- the context length is not checked by the template source (a prompt of any length is
  answered); generate mode still refuses what does not fit its model's own context.

What stays the same at every level: the body's bounds (size, nesting, lone surrogates, numbers
past a double: ``_body``), the bounds on the schemas a request brings (``_schema_limits``: the
mock builds instances of them) and on the answer built from them (``request_rules.BuildBudget``),
auth, faults, defects and the error envelope.
"""

from __future__ import annotations

from typing import Any

from chatcompat import schemas

__all__ = [
    "INT64",
    "PLACEHOLDER_MESSAGE",
    "VALIDATION_LEVELS",
    "VOCAB_SIZE",
    "answerable",
    "repaired",
]

VALIDATION_LEVELS = ("strict", "schema", "off")
VOCAB_SIZE = 128256  # Llama 3: logit_bias keys must be token ids below this
INT64 = (-(2**63), 2**63 - 1)
# What ``off`` answers when no message the schema accepts is left (none, or none valid).
PLACEHOLDER_MESSAGE = {"role": "user", "content": ""}
_REPAIR_ROUNDS = 4  # a round drops what the schema refuses; what is left after 4 is replaced


def _refused_paths(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The JSON paths (as tuples) where the compatible request schema refuses ``body``."""
    validator = schemas.validator("chat-completion-request")
    return [tuple(error.absolute_path) for error in validator.iter_errors(body)]


def repaired(body: dict[str, Any], model: str) -> dict[str, Any]:
    """``body`` made a request the schema accepts, for the ``off`` level: a ``model`` that is
    no string becomes ``model`` (the server's first listed model); a message the schema
    refuses is dropped, and with none left the one message :data:`PLACEHOLDER_MESSAGE` is
    answered; any other top-level key the schema refuses at or under it is dropped (the
    answer is made as if it had not been sent). Never raises."""
    out = dict(body)
    if not isinstance(out.get("model"), str):
        out["model"] = model
    messages = out.get("messages")
    out["messages"] = (
        [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    )
    for _ in range(_REPAIR_ROUNDS):
        if not out["messages"]:
            out["messages"] = [dict(PLACEHOLDER_MESSAGE)]
        paths = _refused_paths(out)
        if not paths:
            return out
        bad = {p[1] for p in paths if len(p) > 1 and p[0] == "messages"}
        out["messages"] = [m for i, m in enumerate(out["messages"]) if i not in bad]
        for key in {p[0] for p in paths if p and p[0] not in ("model", "messages")}:
            out.pop(key, None)
    return {"model": out["model"], "messages": [dict(PLACEHOLDER_MESSAGE)]}


def _bias(value: int) -> int:
    return min(max(value, -100), 100)


def answerable(body: dict[str, Any]) -> dict[str, Any]:
    """A body the schema accepts, with the values no answer source can use made ones it can
    (the rules in the module docstring): limits below 0 made 0, ``logit_bias`` keys that are
    no token id dropped and biases clamped to [-100, 100], a seed outside int64 dropped.
    ``body`` itself when nothing changes."""
    changes: dict[str, Any] = {}
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and value < 0:
            changes[key] = 0
    bias = body.get("logit_bias")
    if bias:
        changes["logit_bias"] = {
            k: _bias(v)
            for k, v in bias.items()
            if k.isascii() and k.isdigit() and int(k) < VOCAB_SIZE
        }
    seed = body.get("seed")
    if seed is not None and not INT64[0] <= seed <= INT64[1]:
        changes["seed"] = None
    return {**body, **changes} if changes else body
