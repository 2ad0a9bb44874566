"""The template source: answers made from the provider's documented examples
(``mockserver/data/seed``), shaped by the request.

Choice i says the text of documented answer i mod 2 (so n > 1 choices differ), one token per
Llama 3 pre-tokenizer piece. The shared rules are ``chatcompat.request_rules``': ``max_tokens`` /
``max_completion_tokens`` truncate with "length", ``stop`` cuts the text ("" is ignored), the
forced tool calls (a named function; "required": each tool, the first only when
``parallel_tool_calls`` is false) are made with arguments that validate against each tool's
parameters (no call, finish "length", when the token limit cannot hold them), and a prompt that
does not fit the context is refused (by the approximate count). The template's own choices:
``tool_choice`` "auto" (the default with tools) calls the first function tool, ``logprobs`` /
``top_logprobs`` give deterministic, well-formed entries (the sampled token first), and
``response_format`` json_object / json_schema give JSON (a schema-valid instance); a prompt
with non-ASCII text gets a text answer that opens with :data:`MULTILINGUAL_TEXT`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from chatcompat.request_rules import (
    BuildBudget,
    check_context_length,
    completion_limit,
    forced_tools,
    function_tools,
    stop_strings,
)
from mockserver._answer import Answer, Choice, Token, Usage
from mockserver._tokens import count_prompt_tokens, pieces

__all__ = ["example_for", "seed_texts", "template_answer"]


@functools.cache
def seed_texts() -> tuple[str, ...]:
    """The texts of the provider's documented non-stream answers."""
    folder = resources.files("mockserver") / "data" / "seed"
    return tuple(
        json.loads((folder / name).read_text(encoding="utf-8"))["choices"][0]["message"]["content"]
        for name in ("response.json", "response-2.json")
    )


def example_for(schema: Any, budget: BuildBudget | None = None, depth: int = 0) -> Any:
    """A small instance of JSON Schema ``schema`` (const, enum, type, required properties,
    minItems, minLength, minimum), enough for the common tool-parameter and response-format
    schemas. Its JSON size is counted in ``budget`` as it is built (None: a fresh
    :class:`BuildBudget`, ``MAX_BUILT_BYTES``), which raises ``RuleViolation`` (400) past it."""
    budget = BuildBudget() if budget is None else budget
    if not isinstance(schema, dict) or depth > 8:
        budget.spend(2)
        return {}
    if "const" in schema:
        return _spent(budget, schema["const"])
    if schema.get("enum"):
        return _spent(budget, schema["enum"][0])
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_for(schema[key][0], budget, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        instance = {}
        for key in schema.get("required", list(properties)):
            budget.spend(len(key) + 4)  # "key": and a comma
            instance[key] = example_for(properties.get(key, {}), budget, depth + 1)
        budget.spend(2)
        return instance
    if kind == "array":
        budget.spend(2)
        items = schema.get("items", {})
        return [
            example_for(items, budget, depth + 1) for _ in range(int(schema.get("minItems", 1)))
        ]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return _spent(budget, int(low) if kind == "integer" else float(low))
    if kind == "boolean":
        return _spent(budget, True)
    if kind == "null":
        return _spent(budget, None)
    length = min(max(int(schema.get("minLength", 0)), 5), int(schema.get("maxLength", 64)))
    budget.spend(length + 2)  # before the string is made
    return "Paris".ljust(length, "!")[:length]


def _spent(budget: BuildBudget, value: Any) -> Any:
    """``value``, its JSON size counted in ``budget``."""
    budget.spend(len(value) + 2 if isinstance(value, str) else len(json.dumps(value)))
    return value


def _called_tools(request: dict[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """The tools the answer calls: the forced ones, else for "auto" (the default with tools)
    the template's own choice, the first function tool; none for "none"."""
    tools, choice = request.get("tools"), request.get("tool_choice")
    forced = forced_tools(tools, choice, request.get("parallel_tool_calls"))
    if forced or choice == "none":
        return forced
    return function_tools(tools)[:1]


# Said first by a text answer to a prompt with non-ASCII text: the languages of the seed's model
# page (German, French, Italian, Portuguese, Hindi, Spanish, Thai) and emoji outside the BMP.
MULTILINGUAL_TEXT = "Grüße! Ça va ? Città, coração. नमस्ते! ¡Hola, señor! สวัสดีครับ 👋🌍\n\n"


def _asks_non_ascii(messages: Any) -> bool:
    """Whether any message's text (string content or text parts) holds a non-ASCII character."""
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        parts = content if isinstance(content, list) else [{"text": content}]
        for part in parts:
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str) and not text.isascii():
                return True
    return False


def _text_for(request: dict[str, Any], index: int, budget: BuildBudget) -> str:
    text = seed_texts()[index % len(seed_texts())]
    if _asks_non_ascii(request.get("messages")):
        text = MULTILINGUAL_TEXT + text
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(example_for(schema, budget.at("response_format.json_schema.schema")))
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": text})
    return text


def _logprob_entries(piece: str, position: int, top: int) -> tuple[dict[str, Any], ...]:
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    logprob = -round(0.05 + (position % 7) * 0.11, 4)
    alternatives = [entry(piece, logprob)] + [
        entry(alt, round(logprob - 1.5 - i, 4))
        for i, alt in enumerate(
            [
                " the",
                " a",
                ",",
                ".",
                " I",
                " you",
                " it",
                " to",
                " and",
                " of",
                " is",
                " in",
                " that",
                " for",
                " on",
                " with",
                " as",
                " be",
                " at",
            ]
        )
    ]
    return ({**entry(piece, logprob), "top_logprobs": alternatives[:top]},)


def _tool_tokens(
    tool: Mapping[str, Any], index: int, call: int, budget: BuildBudget
) -> tuple[Token, ...]:
    function = tool["function"]
    arguments = json.dumps(example_for(function.get("parameters") or {}, budget.at("tools")))
    head = {
        "index": call,
        "id": f"call_chatcompat{index}" + (f"_{call}" if call else ""),
        "type": "function",
        "function": {"name": function["name"], "arguments": ""},
    }
    tail = [{"index": call, "function": {"arguments": part}} for part in pieces(arguments)]
    return (Token(tool_calls=(head,)), *(Token(tool_calls=(t,)) for t in tail))


def _choice(request: dict[str, Any], index: int, budget: BuildBudget) -> tuple[Choice, int]:
    """Choice ``index`` and the completion tokens it spent; what it builds from the request's
    schemas is counted in ``budget``."""
    tools = _called_tools(request)
    limit = completion_limit(request)
    if tools:
        tokens = tuple(
            t for call, tool in enumerate(tools) for t in _tool_tokens(tool, index, call, budget)
        )
        if limit is not None and limit < len(tokens) + 1:  # a cut call is no call
            return Choice(index, (), "length"), limit
        return Choice(index, tokens, "tool_calls"), len(tokens) + 1
    text = _text_for(request, index, budget)
    parts = pieces(text)
    finish = "stop"
    if limit is not None and limit < len(parts) + 1:  # + 1: the end-of-turn token
        parts, finish = parts[:limit], "length"
    text = "".join(parts)
    hits = [i for i in (text.find(s) for s in stop_strings(request)) if i >= 0]
    if hits:
        parts, finish = pieces(text[: min(hits)]), "stop"
    want_logprobs, top = bool(request.get("logprobs")), request.get("top_logprobs") or 0
    tokens = tuple(
        Token(part, logprobs=_logprob_entries(part, i, top) if want_logprobs else ())
        for i, part in enumerate(parts)
    )
    spent = len(tokens) + (finish == "stop")  # + 1: the end-of-turn token or the stop string
    return Choice(index, tokens, finish), spent if limit is None else min(spent, limit)


def template_answer(
    request: dict[str, Any], *, completion_id: str, created: int, context_length: int | None = None
) -> Answer:
    """The template answer to a validated ``request``; raises
    ``chatcompat.request_rules.RuleViolation`` when its prompt (counted approximately) and
    completion limit do not fit in ``context_length`` tokens (None: no limit), or when the
    JSON its choices build from the request's schemas passes ``MAX_BUILT_BYTES`` (16 KiB: the
    building stops there)."""
    prompt = count_prompt_tokens(request["messages"])
    if context_length is not None:
        check_context_length(prompt, completion_limit(request), context_length)
    choices, spent, budget = [], 0, BuildBudget()
    for index in range(request.get("n") or 1):
        choice, used = _choice(request, index, budget)
        choices.append(choice)
        spent += used
    return Answer(
        id=completion_id,
        created=created,
        model=request["model"],
        choices=tuple(choices),
        usage=Usage(prompt, spent),
        logprobs=bool(request.get("logprobs")),
        include_usage=bool((request.get("stream_options") or {}).get("include_usage")),
    )
