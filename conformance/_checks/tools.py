"""Tool-calling checks (group "tools").

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

from conformance._assertions import chunks_of, json_body, require_refused, require_status
from conformance._context import WEATHER_TOOL, Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped, CheckWarning
from conformance._registry import check

__all__ = [
    "TIME_TOOL",
    "WEATHER_TOOL",
    "tool_invalid",
    "tool_none_roundtrip",
    "tool_nonstream",
    "tool_parallel",
    "tool_stream_cont",
    "tool_stream_first",
    "tool_stream_not_dropped",
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


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _body(ctx: Context, case: dict[str, Any]) -> dict[str, Any]:
    return ctx.request(**{"messages": _WEATHER_QUESTION, "temperature": 0, **case})


def _exchange(ctx: Context, name: str) -> Awaitable[Exchange]:
    """The shared exchange of tool case ``name``."""
    body = _body(ctx, _CASES[name])
    return ctx.shared(f"tools:{name}", lambda: ctx.chat(body))


def _tools_of(exchange: Exchange) -> dict[str, dict[str, Any]]:
    """The functions the request of ``exchange`` supplied, by name."""
    sent = json.loads(exchange.sent or b"{}")
    return {t["function"]["name"]: t["function"] for t in sent.get("tools") or []}


def _message(exchange: Exchange) -> tuple[dict[str, Any], dict[str, Any]]:
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


def _calls(exchange: Exchange, message: dict[str, Any]) -> list[Any]:
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


def _arguments_problem(arguments: Any, function: dict[str, Any]) -> str | None:
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
    return _arguments_problem(function.get("arguments"), tools[name])


def _check_calls(exchange: Exchange, calls: list[Any], case: str) -> None:
    """Fail unless every call is well formed and the ids are unique."""
    tools = _tools_of(exchange)
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


@check(group="tools", capability="tools")
async def tool_nonstream(ctx: Context) -> None:
    """Tool calls for auto, required and named tool_choice are well formed and validate."""
    auto, required, named = await asyncio.gather(
        _exchange(ctx, "auto"), _exchange(ctx, "required"), _exchange(ctx, "named")
    )
    for case, exchange in (("auto", auto), ("required", required), ("named", named)):
        choice, message = _message(exchange)
        calls = _calls(exchange, message)
        if not calls and case == "auto":
            continue  # a model may answer "auto" with text
        if not calls:
            raise CheckFailed(
                f"tool_choice {case} gave no tool call",
                expected="at least one tool call",
                received=f"content {message.get('content')!r}, "
                f"finish_reason {choice.get('finish_reason')!r}",
                exchange=exchange,
            )
        _check_calls(exchange, calls, case)
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


def _stream_calls(
    exchange: Exchange,
) -> tuple[dict[int, list[dict[str, Any]]], list[Any], str | None]:
    """The tool-call fragments of choice 0 of a stream grouped by their index (in stream
    order), the fragments whose index is not an integer, and the finish_reason."""
    _, chunks = chunks_of(exchange)
    groups: dict[int, list[dict[str, Any]]] = {}
    unindexed: list[Any] = []
    finish = None
    for chunk in chunks:
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            finish = choice.get("finish_reason") or finish
            delta = choice.get("delta")
            fragments = delta.get("tool_calls") if isinstance(delta, dict) else None
            for fragment in fragments if isinstance(fragments, list) else []:
                index = fragment.get("index") if isinstance(fragment, dict) else None
                if isinstance(index, int) and not isinstance(index, bool):
                    groups.setdefault(index, []).append(fragment)
                else:
                    unindexed.append(fragment)
    return groups, unindexed, finish


def _streamed_or_skip(exchange: Exchange) -> dict[int, list[dict[str, Any]]]:
    groups, unindexed, _ = _stream_calls(exchange)
    if unindexed:
        raise CheckFailed(
            "a tool-call delta has no integer index",
            expected="an integer index in every tool_calls delta",
            received=json.dumps(unindexed[0])[:200],
            exchange=exchange,
        )
    if not groups:
        raise CheckSkipped("the stream holds no tool call (tool_stream_not_dropped reports it)")
    return groups


def _joined_arguments(fragments: list[dict[str, Any]]) -> str:
    return "".join(
        (f.get("function") or {}).get("arguments") or ""
        for f in fragments
        if isinstance(f.get("function"), dict)
    )


@check(group="tools", capability="tools")
async def tool_stream_first(ctx: Context) -> None:
    """The first delta of each streamed call has its 0-based index, id, type and whole name."""
    exchange = await _exchange(ctx, "required-stream")
    groups = _streamed_or_skip(exchange)
    if sorted(groups) != list(range(len(groups))):
        raise CheckFailed(
            "the tool call indices are not 0-based and contiguous",
            expected=", ".join(map(str, range(len(groups)))),
            received=", ".join(map(str, sorted(groups))),
            exchange=exchange,
        )
    tools = _tools_of(exchange)
    for index, fragments in sorted(groups.items()):
        first = fragments[0]
        function = _obj(first.get("function"))
        problem = None
        if not isinstance(first.get("id"), str) or not first["id"]:
            problem = f"id is {first.get('id')!r}"
        elif first.get("type") != "function":
            problem = f"type is {first.get('type')!r}"
        elif function.get("name") not in tools:
            problem = f"function.name is {function.get('name')!r}, not a whole supplied name"
        if problem:
            raise CheckFailed(
                f"the first delta of tool call {index} is incomplete: {problem}",
                expected='index, a non-empty id, type "function" and the whole function name '
                "in the first delta of each call",
                received=json.dumps(first)[:300],
                exchange=exchange,
            )


@check(group="tools", capability="tools")
async def tool_stream_cont(ctx: Context) -> None:
    """Later deltas of a streamed call omit or repeat id/type/name; arguments join to JSON."""
    exchange, nonstream = await asyncio.gather(
        _exchange(ctx, "required-stream"), _exchange(ctx, "required")
    )
    groups = _streamed_or_skip(exchange)
    tools = _tools_of(exchange)
    joined: dict[int, Any] = {}
    for index, fragments in sorted(groups.items()):
        first = fragments[0]
        first_function = _obj(first.get("function"))
        for position, fragment in enumerate(fragments[1:], start=1):
            function = _obj(fragment.get("function"))
            pairs = [(k, fragment, first) for k in ("id", "type")]
            pairs.append(("name", function, first_function))
            for key, later, head in pairs:
                if key in later and key in head and later[key] != head[key]:
                    raise CheckFailed(
                        f"delta {position} of tool call {index} changes {key}",
                        expected=f"{key} left out, or {head[key]!r} again",
                        received=repr(later[key]),
                        exchange=exchange,
                    )
            if "arguments" in function and not isinstance(function["arguments"], str):
                raise CheckFailed(
                    f"delta {position} of tool call {index} has non-string arguments",
                    expected="a string fragment of the arguments",
                    received=repr(function["arguments"]),
                    exchange=exchange,
                )
        arguments = _joined_arguments(fragments)
        names = [_obj(f.get("function")).get("name") for f in fragments]
        name = next((n for n in names if n), None)  # tool_stream_first wants it in the first
        problem = _arguments_problem(arguments, tools[name]) if name in tools else None
        if problem:
            raise CheckFailed(
                f"the joined argument fragments of tool call {index} are wrong: {problem}",
                expected="fragments that join into a JSON object that validates",
                received=arguments[:300],
                exchange=exchange,
            )
        joined[index] = json.loads(arguments) if name in tools else None
    # The stream and non-stream answers at temperature 0 should agree; batched GPU engines
    # are not bit-reproducible, so a difference is a warning.
    if nonstream.status != 200:
        return
    try:
        calls = json_body(nonstream)["choices"][0]["message"].get("tool_calls") or []
        expected = {i: json.loads(c["function"]["arguments"]) for i, c in enumerate(calls)}
    except (CheckFailed, LookupError, TypeError, ValueError, AttributeError):
        return  # tool_nonstream reports a broken non-stream answer
    if expected and joined != expected:
        raise CheckWarning(
            "the streamed arguments differ from the non-stream ones at temperature 0",
            expected=json.dumps(expected)[:300],
            received=json.dumps(joined)[:300],
            exchange=exchange,
        )


@check(group="tools", capability="tools")
async def tool_stream_not_dropped(ctx: Context) -> None:
    """A stream with tool_choice required streams tool calls (not text) and ends tool_calls."""
    exchange = await _exchange(ctx, "required-stream")
    groups, unindexed, finish = _stream_calls(exchange)
    if not groups and not unindexed:
        raise CheckFailed(
            "the stream dropped the tool call",
            expected="tool_calls deltas",
            received=f"no tool_calls delta, finish_reason {finish!r}",
            exchange=exchange,
        )
    if finish != "tool_calls":
        raise CheckFailed(
            "the stream of a required tool call has the wrong finish_reason",
            expected="tool_calls",
            received=repr(finish),
            exchange=exchange,
        )


@check(group="tools", capability="tools")
async def tool_parallel(ctx: Context) -> None:
    """Parallel calls get distinct ids, indices 0..k-1; parallel_tool_calls=false gives <= 1."""
    parallel, serial = await asyncio.gather(
        _exchange(ctx, "parallel-stream"), _exchange(ctx, "serial")
    )
    groups, _, _ = _stream_calls(parallel)
    if len(groups) >= 2:  # a model may make one call only: then there is nothing to compare
        if sorted(groups) != list(range(len(groups))):
            raise CheckFailed(
                f"{len(groups)} parallel calls are not indexed 0..{len(groups) - 1}",
                expected=", ".join(map(str, range(len(groups)))),
                received=", ".join(map(str, sorted(groups))),
                exchange=parallel,
            )
        ids = [fragments[0].get("id") for _, fragments in sorted(groups.items())]
        if len(set(ids)) != len(ids) or not all(isinstance(i, str) and i for i in ids):
            raise CheckFailed(
                f"{len(groups)} parallel calls do not have distinct ids",
                expected="a distinct non-empty id per call",
                received=", ".join(map(repr, ids)),
                exchange=parallel,
            )
    _, message = _message(serial)
    calls = _calls(serial, message)
    if len(calls) > 1:
        raise CheckFailed(
            "parallel_tool_calls=false gave several calls",
            expected="at most one tool call",
            received=f"{len(calls)} calls",
            exchange=serial,
        )


@check(group="tools", capability="tools")
async def tool_none_roundtrip(ctx: Context) -> None:
    """tool_choice none gives text; tool results fed back give a text answer, not a call."""
    none, roundtrip = await asyncio.gather(_exchange(ctx, "none"), _exchange(ctx, "roundtrip"))
    for case, exchange in (("tool_choice none", none), ("the tool-result round trip", roundtrip)):
        choice, message = _message(exchange)
        calls = _calls(exchange, message)
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


@check(group="tools", capability="tools")
async def tool_invalid(ctx: Context) -> None:
    """Inconsistent tool_choice gets 400; max_completion_tokens=1 with required gives length."""

    async def send(overrides: dict[str, Any]) -> Exchange:
        return await ctx.chat(_body(ctx, overrides))

    exchanges = await asyncio.gather(*(send(overrides) for _, overrides in _INVALID))
    for (what, _), exchange in zip(_INVALID, exchanges, strict=True):
        require_refused(f"{what}: the request", exchange)
    body = _body(ctx, _CASES["required"])
    del body["max_tokens"]
    exchange = await ctx.chat({**body, "max_completion_tokens": 1})
    choice, message = _message(exchange)
    if choice.get("finish_reason") != "length":
        raise CheckFailed(
            "max_completion_tokens=1 with tool_choice required did not end on the limit",
            expected='finish_reason "length"',
            received=repr(choice.get("finish_reason")),
            exchange=exchange,
        )
    _check_calls(exchange, _calls(exchange, message), "max_completion_tokens=1")
