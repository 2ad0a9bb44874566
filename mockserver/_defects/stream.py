"""Defects at the stream stages: ``chunks`` (the stream's chunk objects, list[dict] ->
list[dict]), ``events`` (its SSE event bytes, [DONE] last, list[bytes] -> list[bytes]) and
``stream_content_type`` (str -> str).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mockserver._defects.defect import Defect, Hook
from mockserver._defects.hooks import choices, copied, fragments, without

__all__ = ["DEFECTS"]


def _each_choice(change: Hook) -> Hook:
    """A chunks hook applying ``change`` to every choice of every chunk."""
    return lambda chunks: [
        {**c, "choices": [change(x) for x in choices(c)]} if "choices" in c else c for c in chunks
    ]


def _plain(hook: Hook) -> Hook:
    """``hook`` on plain text streams only (no logprobs, no tool calls), so that it breaks
    what it means to break and leaves logprobs and tool calls as they are."""

    def plain_only(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = [x for c in chunks for x in choices(c)]
        if any(x.get("logprobs") or (x.get("delta") or {}).get("tool_calls") for x in found):
            return chunks
        result: list[dict[str, Any]] = hook(chunks)
        return result

    return plain_only


def _numbered_ids(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "id": f"{c['id']}-{i}"} for i, c in enumerate(chunks)]


def _finishes(chunk: dict[str, Any]) -> bool:
    return any(x.get("finish_reason") is not None for x in choices(chunk))


def _content_after_finish(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    late = {"content": " Bye."}
    return [
        x
        for c in chunks
        for x in (
            [
                c,
                {
                    **c,
                    "choices": [{**y, "delta": late, "finish_reason": None} for y in choices(c)],
                },
            ]
            if _finishes(c)
            else [c]
        )
    ]


def _content_in_finish(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each choice's last content chunk merged into its finish chunk (one choice per chunk)."""
    out: list[dict[str, Any] | None] = []
    last: dict[int, int] = {}  # choice index -> where its last content chunk is in out
    for chunk in chunks:
        found = choices(chunk)
        if len(found) == 1:
            choice, index = found[0], found[0].get("index", 0)
            if choice.get("finish_reason") is not None and index in last:
                where = last.pop(index)
                moved, out[where] = out[where] or {}, None
                text = (moved["choices"][0].get("delta") or {}).get("content", "")
                choice = {**choice, "delta": {**(choice.get("delta") or {}), "content": text}}
                chunk = {**chunk, "choices": [choice]}
            elif (choice.get("delta") or {}).get("content"):
                last[index] = len(out)
        out.append(chunk)
    return [c for c in out if c is not None]


def _empty_choices_chunk(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*chunks[:1], {**chunks[0], "choices": []}, *chunks[1:]] if chunks else chunks


def _prompt_filter_chunk(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A first chunk with choices [] and only Azure's prompt_filter_results."""
    if not chunks:
        return chunks
    filters = [{"prompt_index": 0, "content_filter_results": {}}]
    return [{**chunks[0], "choices": [], "prompt_filter_results": filters}, *chunks]


def _drop_first_token(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[Any] = set()

    def drop(choice: dict[str, Any]) -> dict[str, Any]:
        delta = choice.get("delta") or {}
        if not delta.get("content") or choice.get("index") in seen:
            return choice
        seen.add(choice.get("index"))
        return {**choice, "delta": {**delta, "content": ""}}

    result: list[dict[str, Any]] = _each_choice(drop)(chunks)
    return result


# Usage in streams.


def _usage_everywhere(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    usage = chunks[-1].get("usage") if chunks else None
    return [{**c, "usage": usage} for c in chunks] if isinstance(usage, dict) else chunks


def _stream_usage(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Hook:
    """A chunks hook applying ``change`` to the usage of the usage chunk."""
    return lambda chunks: [
        {**c, "usage": change(c["usage"])} if isinstance(c.get("usage"), dict) else c
        for c in chunks
    ]


def _more_prompt(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        **usage,
        "prompt_tokens": usage["prompt_tokens"] + 1,
        "total_tokens": usage["total_tokens"] + 1,
    }


def _zero_usage_with_tools(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not any((x.get("delta") or {}).get("tool_calls") for c in chunks for x in choices(c)):
        return chunks
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    result: list[dict[str, Any]] = _stream_usage(lambda usage: {**usage, **zero})(chunks)
    return result


# Tool calls and logprobs in streams: in-place changes, applied to a copy by copied().


def _name_in_second_delta(chunks: list[dict[str, Any]]) -> None:
    held: dict[tuple[Any, Any], Any] = {}
    for choice, fragment in fragments(chunks):
        key, function = (choice.get("index"), fragment.get("index")), fragment.get("function", {})
        if "id" in fragment:
            held[key] = function.pop("name", None)
        elif key in held:
            function["name"] = held.pop(key)


def _changing_ids(chunks: list[dict[str, Any]]) -> None:
    for _, fragment in fragments(chunks):
        if "id" not in fragment:
            fragment["id"] = "call_changed"


def _calls_as_text(chunks: list[dict[str, Any]]) -> None:
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            calls = delta.pop("tool_calls", None)
            if calls:
                delta["content"] = "".join(
                    (f.get("function") or {}).get("arguments") or "" for f in calls
                )
            if choice.get("finish_reason") == "tool_calls":
                choice["finish_reason"] = "stop"


def _extra_streamed_argument(chunks: list[dict[str, Any]]) -> None:
    """Each streamed call's arguments end with one key more: "streamed": true."""
    last: dict[tuple[Any, Any], dict[str, Any]] = {}  # (choice, call) -> its last arguments
    joined: dict[tuple[Any, Any], str] = {}
    for choice, fragment in fragments(chunks):
        function = fragment.get("function") or {}
        if isinstance(function.get("arguments"), str) and function["arguments"]:
            key = (choice.get("index"), fragment.get("index"))
            last[key], joined[key] = function, joined.get(key, "") + function["arguments"]
    for key, function in last.items():
        if ":" in joined[key] and "}" in function["arguments"]:
            head, _, tail = function["arguments"].rpartition("}")
            function["arguments"] = f'{head}, "streamed": true}}{tail}'


def _text_chunks_without_logprobs(chunks: list[dict[str, Any]]) -> None:
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if (choice.get("delta") or {}).get("content") and choice.get("logprobs"):
                choice["logprobs"] = None


DEFECTS = (
    # The SSE framing (events, stream_content_type) and the chunks' own fields (chunks).
    Defect(
        "chunk-id-integer",
        "Stream chunks give their id as an integer, not a string (the same in every chunk).",
        {"chunks": lambda chunks: [{**c, "id": 1731584707} for c in chunks]},
    ),
    Defect(
        "missing-done",
        "The stream ends without the final data: [DONE] event.",
        {"events": lambda events: events[:-1]},
    ),
    Defect(
        "null-event",
        "A data: null event is sent before [DONE].",
        {"events": lambda events: [*events[:-1], b"data: null\n\n", events[-1]]},
    ),
    Defect(
        "stream-content-type",
        "Streams are served as application/json instead of text/event-stream.",
        {"stream_content_type": lambda _: "application/json"},
    ),
    Defect(
        "unstable-chunk-id",
        "Every chunk of a stream carries a different id.",
        {"chunks": _numbered_ids},
    ),
    # Deltas and finish chunks (chunks).
    Defect(
        "role-repeated",
        'Every delta repeats role "assistant", not only the first of each choice.',
        {"chunks": _each_choice(lambda c: {**c, "delta": {"role": "assistant", **c["delta"]}})},
    ),
    Defect(
        "finish-without-delta",
        "The finish chunk's choice has no delta object.",
        {
            "chunks": _each_choice(
                lambda c: c if c["finish_reason"] is None else without("delta")(c)
            )
        },
    ),
    Defect(
        "finish-twice",
        "The finish chunk is sent twice.",
        {"chunks": _plain(lambda chunks: [x for c in chunks for x in [c] * (1 + _finishes(c))])},
    ),
    Defect(
        "content-after-finish",
        "A content delta follows each choice's finish chunk.",
        {"chunks": _plain(_content_after_finish)},
    ),
    Defect(
        "content-in-finish-chunk",
        "Each choice's last piece of text rides in its finish chunk.",
        {"chunks": _plain(_content_in_finish)},
    ),
    Defect(
        "empty-choices-mid-stream",
        "A chunk with choices [] and no usage comes after the first chunk.",
        {"chunks": _empty_choices_chunk},
    ),
    Defect(
        "prompt-filter-chunk",
        "Streams open with a chunk of choices [] that carries only prompt_filter_results (Azure).",
        {"chunks": _prompt_filter_chunk},
    ),
    Defect(
        "stream-drops-first-token",
        "Streams lose the first piece of text of each choice.",
        {"chunks": _plain(_drop_first_token)},
    ),
    # Usage (chunks).
    Defect(
        "usage-in-every-chunk",
        "With include_usage, every chunk carries the final usage, not null.",
        {"chunks": _usage_everywhere},
    ),
    Defect(
        "stream-usage-differs",
        "The usage chunk counts one prompt token more than the non-stream answer.",
        {"chunks": _stream_usage(_more_prompt)},
    ),
    Defect(
        "stream-usage-zero-with-tools",
        "The usage chunk of a stream with tool calls counts zero tokens.",
        {"chunks": _zero_usage_with_tools},
    ),
    # n > 1 choices (chunks).
    Defect(
        "n-stream-missing-finish",
        "In a stream with n > 1, only choice 0 gets a finish_reason.",
        {"chunks": _each_choice(lambda c: c if c["index"] == 0 else {**c, "finish_reason": None})},
    ),
    Defect(
        "n-stream-index-zero",
        "Every choice of a stream says index 0, whatever n is.",
        {"chunks": _each_choice(lambda c: {**c, "index": 0})},
    ),
    # Tool calls and logprobs (chunks).
    Defect(
        "tool-name-late",
        "The first delta of a streamed call has no function name; the second carries it.",
        {"chunks": copied(_name_in_second_delta)},
    ),
    Defect(
        "tool-id-changes",
        "Later deltas of a streamed call carry an id different from the first delta's.",
        {"chunks": copied(_changing_ids)},
    ),
    Defect(
        "tool-calls-as-text",
        "Streams with tools send the call's arguments as content and finish with stop.",
        {"chunks": copied(_calls_as_text)},
    ),
    Defect(
        "stream-tool-arguments-differ",
        'Streamed tool calls carry one argument more ("streamed": true) than non-stream ones.',
        {"chunks": copied(_extra_streamed_argument)},
    ),
    Defect(
        "stream-without-logprobs",
        "Streamed chunks with text carry logprobs null although logprobs were asked for.",
        {"chunks": copied(_text_chunks_without_logprobs)},
    ),
)
