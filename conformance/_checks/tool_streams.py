"""Streamed tool-call checks (group "tools"): the deltas of streamed calls, their arguments,
parallel calls. The cases and the helpers they share with the non-stream checks are in
conformance._checks.tools."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conformance._assertions import chunks_of, json_body
from conformance._checks.tools import (
    arguments_problem,
    calls_of,
    message_of,
    tool_exchange,
    tools_of,
)
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = [
    "tool_parallel",
    "tool_stream_args_eq_nonstream",
    "tool_stream_cont",
    "tool_stream_first",
    "tool_stream_not_dropped",
]


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


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


def _name(fragments: list[dict[str, Any]]) -> Any:
    """The first function name among a call's fragments (tool_stream_first wants it in the
    first), or None."""
    names = [_obj(f.get("function")).get("name") for f in fragments]
    return next((n for n in names if n), None)


def _joined_arguments(fragments: list[dict[str, Any]]) -> str:
    return "".join(
        (f.get("function") or {}).get("arguments") or ""
        for f in fragments
        if isinstance(f.get("function"), dict)
    )


@check(group="tools", severity="must", capability="tools")
async def tool_stream_first(ctx: Context) -> None:
    """The first delta of each streamed call has its 0-based index, id, type and whole name.
    In a streamed tool_choice "required" answer every tool-call delta has an integer index, the
    indices are 0..k-1, and the first delta of each call has a non-empty id, type "function" and
    the whole function name.

    Clients open a call at its first delta and key it by index (the SDKs' stream helpers,
    LangChain's tool-call chunks); a name that comes later is never seen."""
    exchange = await tool_exchange(ctx, "required-stream")
    groups = _streamed_or_skip(exchange)
    if sorted(groups) != list(range(len(groups))):
        raise CheckFailed(
            "the tool call indices are not 0-based and contiguous",
            expected=", ".join(map(str, range(len(groups)))),
            received=", ".join(map(str, sorted(groups))),
            exchange=exchange,
        )
    tools = tools_of(exchange)
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


@check(group="tools", severity="must", capability="tools")
async def tool_stream_cont(ctx: Context) -> None:
    """Later deltas of a streamed call omit or repeat id/type/name; arguments join to JSON.
    Later deltas of each call of a streamed tool_choice "required" answer leave id, type and
    name out or repeat them unchanged (null is a change), carry arguments as string fragments,
    and the fragments join into a JSON object that validates against the tool's parameters.

    Clients accumulate a call by its index and concatenate the argument fragments (the SDKs'
    stream helpers, LangChain's tool-call chunks); a changed id or name starts a new call, and
    fragments that do not join to JSON cannot be parsed at the end. No verdict on the arguments
    of a stream cut at max_tokens."""
    exchange = await tool_exchange(ctx, "required-stream")
    groups = _streamed_or_skip(exchange)
    tools = tools_of(exchange)
    for index, fragments in sorted(groups.items()):
        _later_deltas(exchange, index, fragments)
    finish = _stream_calls(exchange)[2]
    for index, fragments in sorted(groups.items()):
        arguments = _joined_arguments(fragments)
        name = _name(fragments)
        problem = arguments_problem(arguments, tools[name]) if name in tools else None
        if problem and finish == "length":
            raise CheckSkipped(
                f"inconclusive: the stream was cut at max_tokens (finish_reason length) before "
                f"the arguments of tool call {index} were whole"
            )
        if problem:
            raise CheckFailed(
                f"the joined argument fragments of tool call {index} are wrong: {problem}",
                expected="fragments that join into a JSON object that validates",
                received=arguments[:300],
                exchange=exchange,
            )


def _later_deltas(exchange: Exchange, index: int, fragments: list[dict[str, Any]]) -> None:
    """Fail unless the later deltas of call ``index`` leave id, type and name out or repeat
    them, and carry string arguments."""
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


def _parsed(arguments: str) -> Any:
    """``arguments`` parsed as JSON, or None when they do not parse."""
    try:
        return json.loads(arguments)
    except ValueError:
        return None


@check(group="tools", severity="should", capability="tools")
async def tool_stream_args_eq_nonstream(ctx: Context) -> None:
    """At temperature 0, a streamed call's arguments equal the non-stream call's.
    The joined argument fragments of each call of the streamed tool_choice "required" answer
    parse to the same object as the arguments of the same call in the non-stream answer.

    Batched GPU engines are not bit-reproducible at temperature 0, so a difference is allowed;
    but a streaming tool parser that drops, repeats or rewrites fragments gives the same
    difference, and a client cannot tell which of the two it got."""
    streamed, nonstream = await asyncio.gather(
        tool_exchange(ctx, "required-stream"), tool_exchange(ctx, "required")
    )
    groups = _streamed_or_skip(streamed)
    joined = {i: _parsed(_joined_arguments(f)) for i, f in sorted(groups.items())}
    try:
        calls = json_body(nonstream)["choices"][0]["message"].get("tool_calls") or []
        expected = {i: json.loads(c["function"]["arguments"]) for i, c in enumerate(calls)}
    except (CheckFailed, LookupError, TypeError, ValueError, AttributeError):
        expected = {}
    if not expected or None in joined.values():
        raise CheckSkipped(
            "inconclusive: no two calls to compare (tool_nonstream and tool_stream_cont report "
            "broken calls)"
        )
    if joined != expected:
        raise CheckFailed(
            "the streamed arguments differ from the non-stream ones at temperature 0",
            expected=json.dumps(expected)[:300],
            received=json.dumps(joined)[:300],
            exchange=streamed,
        )


@check(group="tools", severity="must", capability="tools")
async def tool_stream_not_dropped(ctx: Context) -> None:
    """A stream with tool_choice required streams tool calls (not text) and ends tool_calls.
    A streamed tool_choice "required" answer has tool_calls deltas, not the call as text, and
    finishes with "tool_calls".

    No verdict on the finish of a stream cut at max_tokens."""
    exchange = await tool_exchange(ctx, "required-stream")
    groups, unindexed, finish = _stream_calls(exchange)
    if not groups and not unindexed:
        raise CheckFailed(
            "the stream dropped the tool call",
            expected="tool_calls deltas",
            received=f"no tool_calls delta, finish_reason {finish!r}",
            exchange=exchange,
        )
    if finish == "length":
        raise CheckSkipped(
            "inconclusive: the stream was cut at max_tokens (finish_reason length) before its "
            "call was whole"
        )
    if finish != "tool_calls":
        raise CheckFailed(
            "the stream of a required tool call has the wrong finish_reason",
            expected="tool_calls",
            received=repr(finish),
            exchange=exchange,
        )


@check(group="tools", severity="must", capability="tools")
async def tool_parallel(ctx: Context) -> None:
    """Parallel calls get distinct ids, indices 0..k-1; parallel_tool_calls=false gives <= 1.
    When a two-tool "required" stream makes several calls, they have distinct ids and indices
    0..k-1 (one call: nothing to compare); parallel_tool_calls false gives at most one call.

    Clients answer each call with a tool message naming its id: shared ids mix the results up."""
    parallel, serial = await asyncio.gather(
        tool_exchange(ctx, "parallel-stream"), tool_exchange(ctx, "serial")
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
    _, message = message_of(serial)
    calls = calls_of(serial, message)
    if len(calls) > 1:
        raise CheckFailed(
            "parallel_tool_calls=false gave several calls",
            expected="at most one tool call",
            received=f"{len(calls)} calls",
            exchange=serial,
        )
