"""Tool-calling checks (group "tools"): non-stream calls, tool_choice none and the round trip,
inconsistent requests; the cases and helpers the streamed-call checks
(conformance._checks.tool_streams) share.

Every tool request runs at temperature 0 with small tools whose parameter schemas are
permissive (only ``city`` is required, extra keys allowed), so that a good model's call
validates. A real model may answer "auto" with text, so only "required" and a named
``tool_choice`` must give calls; "auto" is checked for shape when it does call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from conformance._assertions import json_body, require_refused, require_status
from conformance._context import WEATHER_TOOL, Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = [
    "TIME_TOOL",
    "WEATHER_TOOL",
    "arguments_problem",
    "calls_of",
    "check_calls",
    "message_of",
    "tool_exchange",
    "tool_invalid",
    "tool_none_roundtrip",
    "tool_nonstream",
    "tools_of",
]

TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city, e.g. Tokyo"}},
            "required": ["city"],
        },
    },
}
_WEATHER_QUESTION = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
_TWO_QUESTIONS = [
    {
        "role": "user",
        "content": "What is the weather in Paris, and what time is it in Tokyo? "
        "Call both tools at once.",
    }
]
_NAMED = {"type": "function", "function": {"name": "get_weather"}}
_CALL_ID = "call_chatcompat_roundtrip"
_ROUNDTRIP = [
    *_WEATHER_QUESTION,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": _CALL_ID,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": _CALL_ID, "content": '{"temperature_c": 18, "sky": "clear"}'},
]
# What each shared exchange sends: tools, tool_choice and messages (all at temperature 0).
_CASES: dict[str, dict[str, Any]] = {
    "auto": {"tools": [WEATHER_TOOL], "tool_choice": "auto"},
    "required": {"tools": [WEATHER_TOOL], "tool_choice": "required"},
    "named": {"tools": [TIME_TOOL, WEATHER_TOOL], "tool_choice": _NAMED},
    "required-stream": {"tools": [WEATHER_TOOL], "tool_choice": "required", "stream": True},
    "parallel-stream": {
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": "required",
        "messages": _TWO_QUESTIONS,
        "stream": True,
    },
    "serial": {
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "messages": _TWO_QUESTIONS,
    },
    "none": {"tools": [WEATHER_TOOL], "tool_choice": "none"},
    "roundtrip": {"tools": [WEATHER_TOOL], "tool_choice": "none", "messages": _ROUNDTRIP},
}
# Requests that must be refused: (what is wrong, overrides of the request).
_INVALID: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "tool_choice names a tool not in tools",
        {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}},
    ),
    ("tool_choice without tools", {"tool_choice": "required"}),
    ("tool_choice {}", {"tools": [WEATHER_TOOL], "tool_choice": {}}),
)


def _body(ctx: Context, case: dict[str, Any]) -> dict[str, Any]:
    return ctx.request(**{"messages": _WEATHER_QUESTION, "temperature": 0, **case})


def tool_exchange(ctx: Context, name: str) -> Awaitable[Exchange]:
    """The shared exchange of tool case ``name``."""
    body = _body(ctx, _CASES[name])
    return ctx.shared(f"tools:{name}", lambda: ctx.chat(body))


def tools_of(exchange: Exchange) -> dict[str, dict[str, Any]]:
    """The functions the request of ``exchange`` supplied, by name."""
    sent = json.loads(exchange.sent or b"{}")
    return {t["function"]["name"]: t["function"] for t in sent.get("tools") or []}


def message_of(exchange: Exchange) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first choice of a 200 non-stream answer and its message."""
    require_status(exchange, 200)
    body = json_body(exchange)
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise CheckFailed(
            "the answer has no choices[0].message",
            expected="a chat.completion with one choice",
            exchange=exchange,
        )
    return choice, choice["message"]


def calls_of(exchange: Exchange, message: dict[str, Any]) -> list[Any]:
    """message.tool_calls as a list (absent or null: none)."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise CheckFailed(
            "message.tool_calls is not a list",
            expected="a list of tool calls, or no key",
            received=json.dumps(calls)[:200],
            exchange=exchange,
        )
    return calls


def arguments_problem(arguments: Any, function: dict[str, Any]) -> str | None:
    """What keeps ``arguments`` from being a JSON string of an object that validates against
    ``function``'s parameters schema, or None."""
    if not isinstance(arguments, str):
        return f"arguments is not a JSON string but {type(arguments).__name__}: {arguments!r}"
    try:
        value = json.loads(arguments)
    except ValueError as exc:
        return f"arguments is not JSON ({exc}): {arguments[:200]!r}"
    if not isinstance(value, dict):
        return f"arguments is not a JSON object: {arguments[:200]!r}"
    error = best_match(Draft202012Validator(function.get("parameters") or {}).iter_errors(value))
    if error is not None:
        return f"arguments do not validate against the parameters schema: {error.message}"
    return None


def _call_problem(call: Any, tools: dict[str, dict[str, Any]]) -> str | None:
    """What is wrong with one non-stream tool call, or None."""
    if not isinstance(call, dict):
        return f"a tool call is not an object: {call!r}"
    if not isinstance(call.get("id"), str) or not call["id"]:
        return f"the id is not a non-empty string: {call.get('id')!r}"
    if call.get("type") != "function":
        return f'type is {call.get("type")!r}, not "function"'
    function = call.get("function")
    if not isinstance(function, dict):
        return f"function is not an object: {function!r}"
    name = function.get("name")
    if name not in tools:
        return f"the name {name!r} is not one of the supplied tools {sorted(tools)}"
    return arguments_problem(function.get("arguments"), tools[name])


def check_calls(exchange: Exchange, calls: list[Any], case: str) -> None:
    """Fail unless every call is well formed and the ids are unique."""
    tools = tools_of(exchange)
    for position, call in enumerate(calls):
        problem = _call_problem(call, tools)
        if problem:
            raise CheckFailed(
                f"tool_calls[{position}] of the {case} answer is malformed: {problem}",
                expected='{"id": non-empty, "type": "function", "function": {"name": a supplied '
                'tool, "arguments": a JSON object string that validates}}',
                received=json.dumps(call)[:300],
                exchange=exchange,
            )
    ids = [call["id"] for call in calls]
    if len(set(ids)) != len(ids):
        raise CheckFailed(
            f"the tool call ids of the {case} answer repeat",
            expected="unique ids",
            received=", ".join(ids),
            exchange=exchange,
        )


@check(group="tools", severity="must", capability="tools")
async def tool_nonstream(ctx: Context) -> None:
    """Tool calls for auto, required and named tool_choice are well formed and validate.
    At temperature 0 each call has a unique non-empty id, type "function", a supplied name and
    arguments that are a JSON string of an object validating against the tool's parameters;
    finish_reason is tool_calls ("stop" accepted for a named choice, as OpenAI answers); auto may
    answer with text.

    Agents run the call they are given: arguments as an object instead of a string (Ollama), or
    that do not validate, fail in the client's json.loads or in the tool itself. An answer cut
    at max_tokens (finish_reason length) gives no verdict."""
    auto, required, named = await asyncio.gather(
        tool_exchange(ctx, "auto"), tool_exchange(ctx, "required"), tool_exchange(ctx, "named")
    )
    cut: list[str] = []
    for case, exchange in (("auto", auto), ("required", required), ("named", named)):
        choice, message = message_of(exchange)
        calls = calls_of(exchange, message)
        if not calls and case == "auto":
            continue  # a model may answer "auto" with text
        if choice.get("finish_reason") == "length":
            cut.append(case)  # cut at max_tokens: no verdict on a call that is not whole
            continue
        if not calls:
            raise CheckFailed(
                f"tool_choice {case} gave no tool call",
                expected="at least one tool call",
                received=f"content {message.get('content')!r}, "
                f"finish_reason {choice.get('finish_reason')!r}",
                exchange=exchange,
            )
        check_calls(exchange, calls, case)
        finish = choice.get("finish_reason")
        # OpenAI itself answers a named tool_choice with "stop": only auto/required must say
        # "tool_calls".
        allowed = ("tool_calls", "stop") if case == "named" else ("tool_calls",)
        if finish not in allowed:
            raise CheckFailed(
                f"the {case} answer with tool calls has the wrong finish_reason",
                expected=" or ".join(allowed),
                received=repr(finish),
                exchange=exchange,
            )
        if case == "named" and any(c["function"]["name"] != "get_weather" for c in calls):
            raise CheckFailed(
                "the named tool_choice was not followed",
                expected="calls of get_weather only",
                received=", ".join(c["function"]["name"] for c in calls),
                exchange=exchange,
            )
    if cut:
        raise CheckSkipped(
            f"inconclusive: tool_choice {' and '.join(cut)}: the answer was cut at max_tokens "
            "(finish_reason length) before its call was whole"
        )


@check(group="tools", severity="must", capability="tools")
async def tool_none_roundtrip(ctx: Context) -> None:
    """tool_choice none gives text; tool results fed back give a text answer, not a call.
    tool_choice "none" gives text and no tool_calls; a history with a call and its tool result
    (tools given, tool_choice "none") gets non-empty text and a finish other than tool_calls.

    An agent loop ends when the model answers in text: a server that keeps calling tools loops
    forever."""
    none, roundtrip = await asyncio.gather(
        tool_exchange(ctx, "none"), tool_exchange(ctx, "roundtrip")
    )
    for case, exchange in (("tool_choice none", none), ("the tool-result round trip", roundtrip)):
        choice, message = message_of(exchange)
        calls = calls_of(exchange, message)
        content = message.get("content")
        if calls or choice.get("finish_reason") == "tool_calls":
            raise CheckFailed(
                f"{case} gave a tool call",
                expected="a text answer, finish_reason other than tool_calls",
                received=f"{len(calls)} tool calls, finish_reason {choice.get('finish_reason')!r}",
                exchange=exchange,
            )
        if not isinstance(content, str) or not content:
            raise CheckFailed(
                f"{case} gave no text",
                expected="non-empty content",
                received=repr(content),
                exchange=exchange,
            )


@check(group="tools", severity="must", capability="tools")
async def tool_invalid(ctx: Context) -> None:
    """Inconsistent tool_choice gets 400; max_completion_tokens=1 with required gives length.
    A named tool not in tools, tool_choice without tools and tool_choice {} get 400 (or 422);
    max_completion_tokens 1 with tool_choice required gets 200, finish_reason "length" and no
    malformed call."""

    async def send(overrides: dict[str, Any]) -> Exchange:
        return await ctx.chat(_body(ctx, overrides))

    exchanges = await asyncio.gather(*(send(overrides) for _, overrides in _INVALID))
    for (what, _), exchange in zip(_INVALID, exchanges, strict=True):
        require_refused(f"{what}: the request", exchange)
    body = _body(ctx, _CASES["required"])
    del body["max_tokens"]
    exchange = await ctx.chat({**body, "max_completion_tokens": 1})
    choice, message = message_of(exchange)
    if choice.get("finish_reason") != "length":
        raise CheckFailed(
            "max_completion_tokens=1 with tool_choice required did not end on the limit",
            expected='finish_reason "length"',
            received=repr(choice.get("finish_reason")),
            exchange=exchange,
        )
    check_calls(exchange, calls_of(exchange, message), "max_completion_tokens=1")
