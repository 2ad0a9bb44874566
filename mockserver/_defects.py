"""Defect modes: each breaks one behaviour, so that a conformance check can be shown to fail.

A defect is data: its name, the check id that must catch it, a one-line doc and the hooks it
installs at named stages of the answer pipeline. Handlers call :func:`apply` at each stage:

- ``request_raw`` (parsed body, before validation) and ``request`` (validated body, before the
  answer is made): dict -> dict
- ``completion`` (a non-stream answer) and ``models`` (the GET /models listing): dict -> dict
- ``chunks`` (the stream's chunk objects): list[dict] -> list[dict]
- ``events`` (the stream's SSE event bytes, [DONE] last): list[bytes] -> list[bytes]
- ``stream_content_type``: str -> str
- ``error`` (status, envelope): tuple -> tuple
- ``retrieve_unknown`` (whether GET /models/{id} serves an unlisted id): bool -> bool
- ``auth`` (whether the API key is checked): bool -> bool
- ``stream_error`` (whether the error of a stream request is sent as an event of a 200
  stream): bool -> bool
- ``fault`` (the fault injected into a valid request, or None): Fault | None -> Fault | None
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["DEFECTS", "ActiveDefects", "Defect"]

Hook = Callable[[Any], Any]


@dataclass(frozen=True)
class Defect:
    name: str
    caught_by: str  # the conformance check id that must fail against this defect
    doc: str
    hooks: dict[str, Hook] = field(default_factory=dict)  # stage -> value transform
    also_caught_by: tuple[str, ...] = ()  # other checks that see the same broken behaviour
    generate: bool = False  # shown in the mock's generate mode only (the template does not sample)
    reference: bool = False  # shown in generate mode against --reference (its exact distributions)
    # hooks that keep state (stage -> hook), made afresh for each server so none share it
    stateful: Callable[[], dict[str, Hook]] | None = None


def _set(key: str, value: Any) -> Hook:
    return lambda obj: {**obj, key: value}


def _numbered_ids(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "id": f"{c['id']}-{i}"} for i, c in enumerate(chunks)]


def _flat_error(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, body = answer
    return status, {"detail": body["error"]["message"]}


def _server_error(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, body = answer
    return (500 if status == 400 else status), body


def _bad_model_entries(listing: dict[str, Any]) -> dict[str, Any]:
    return {**listing, "data": [{"id": m["id"], "object": "model"} for m in listing["data"]]}


# Stream chunks, usage and n > 1 (conformance groups stream, usage, n): hooks.


def _choices(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    choices = chunk.get("choices")
    return choices if isinstance(choices, list) else []


def _each_choice(change: Hook) -> Hook:
    """A chunks hook applying ``change`` to every choice of every chunk."""
    return lambda chunks: [
        {**c, "choices": [change(x) for x in _choices(c)]} if "choices" in c else c for c in chunks
    ]


def _plain(hook: Hook) -> Hook:
    """``hook`` on plain text streams only (no logprobs, no tool calls), so that it breaks
    what it means to break and nothing the logprobs or tools checks look at."""

    def plain_only(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        choices = [x for c in chunks for x in _choices(c)]
        if any(x.get("logprobs") or (x.get("delta") or {}).get("tool_calls") for x in choices):
            return chunks
        result: list[dict[str, Any]] = hook(chunks)
        return result

    return plain_only


def _drop(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


def _finishes(chunk: dict[str, Any]) -> bool:
    return any(x.get("finish_reason") is not None for x in _choices(chunk))


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
                    "choices": [{**y, "delta": late, "finish_reason": None} for y in _choices(c)],
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
        choices = _choices(chunk)
        if len(choices) == 1:
            choice, index = choices[0], choices[0].get("index", 0)
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


def _usage_total_off(body: dict[str, Any]) -> dict[str, Any]:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return body
    return {**body, "usage": {**usage, "total_tokens": usage["total_tokens"] + 1}}


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
    if not any((x.get("delta") or {}).get("tool_calls") for c in chunks for x in _choices(c)):
        return chunks
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    result: list[dict[str, Any]] = _stream_usage(lambda usage: {**usage, **zero})(chunks)
    return result


# Response shape and request acceptance (conformance group response): hooks.


def _refuse(status: int, message: str, param: str | None = None) -> Any:
    from mockserver._errors import ApiError

    raise ApiError(status, message, param=param)


def _no_content_with_tool_calls(body: dict[str, Any]) -> dict[str, Any]:
    def dropped(choice: dict[str, Any]) -> dict[str, Any]:
        message = choice.get("message") or {}
        if not message.get("tool_calls"):
            return choice
        return {**choice, "message": {k: v for k, v in message.items() if k != "content"}}

    return {**body, "choices": [dropped(c) for c in body.get("choices") or []]}


def _without(*keys: str) -> Hook:
    return lambda body: {k: v for k, v in body.items() if k not in keys}


def _untooled(hook: Hook) -> Hook:
    """``hook`` on requests without tools only, so that the tools checks see nothing of it."""
    return lambda body: body if body.get("tools") else hook(body)


def _refuse_user(body: dict[str, Any]) -> dict[str, Any]:
    if "user" in body:
        _refuse(422, "extra_forbidden: Extra inputs are not permitted (body.user)", "user")
    return body


def _refuse_content_parts(body: dict[str, Any]) -> dict[str, Any]:
    for message in body.get("messages") or []:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            _refuse(400, "Message content must be a string.", "messages")
    return body


def _refuse_empty_assistant(body: dict[str, Any]) -> dict[str, Any]:
    for message in body.get("messages") or []:
        assistant = isinstance(message, dict) and message.get("role") == "assistant"
        if assistant and message.get("content") == "":
            _refuse(400, "Assistant message content must not be empty.", "messages")
    return body


# Errors (conformance group errors): hooks.


def _status_for(code: str | int, status: int) -> Hook:
    """An error hook answering errors with ``code`` (or status ``code``) with ``status``."""

    def change(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        old, body = answer
        return (status if code in (old, body["error"].get("code")) else old), body

    return change


def _silent_close(fault: Any) -> Any:
    if fault is None or fault.error_after is None:
        return fault
    return replace(fault, error_after=None, disconnect_after=fault.error_after)


_TRACE = (
    'Traceback (most recent call last):\n  File "/usr/lib/python3.11/site-packages/'
    'server/app.py", line 42, in chat\nValueError: invalid request'
)


def _with_traceback(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    status, body = answer
    if status != 400:
        return answer
    error = body["error"]
    return status, {**body, "error": {**error, "message": f"{error['message']}\n{_TRACE}"}}


def _poison_after_refusal() -> dict[str, Hook]:
    """A request_raw hook remembering the users of refused requests (no messages list) and
    failing their later requests with 500."""
    poisoned: set[str] = set()

    def hook(body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("user")
        if not isinstance(user, str):
            return body
        if user in poisoned:
            _refuse(500, "The server had an error processing your request.")
        if not isinstance(body.get("messages"), list):
            poisoned.add(user)
        return body

    return {"request_raw": hook}


# Tools, logprobs and sampling (conformance groups tools, logprobs, sampling): hooks.


def _copied(change: Callable[[Any], None]) -> Hook:
    """A hook applying the in-place ``change`` to a deep copy of its value."""

    def hook(value: Any) -> Any:
        value = copy.deepcopy(value)
        change(value)
        return value

    return hook


def _message_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls of every message of a non-stream answer."""
    return [
        call
        for choice in body.get("choices") or []
        for call in (choice.get("message") or {}).get("tool_calls") or []
    ]


def _fragments(chunks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (choice, tool-call delta fragment) of a stream, in stream order."""
    return [
        (choice, fragment)
        for chunk in chunks
        for choice in chunk.get("choices") or []
        for fragment in (choice.get("delta") or {}).get("tool_calls") or []
    ]


def _arguments_as_objects(body: dict[str, Any]) -> None:
    for call in _message_calls(body):
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])


def _name_in_second_delta(chunks: list[dict[str, Any]]) -> None:
    held: dict[tuple[Any, Any], Any] = {}
    for choice, fragment in _fragments(chunks):
        key, function = (choice.get("index"), fragment.get("index")), fragment.get("function", {})
        if "id" in fragment:
            held[key] = function.pop("name", None)
        elif key in held:
            function["name"] = held.pop(key)


def _changing_ids(chunks: list[dict[str, Any]]) -> None:
    for _, fragment in _fragments(chunks):
        if "id" not in fragment:
            fragment["id"] = "call_changed"


def _same_ids(value: Any) -> None:
    calls = _message_calls(value) if isinstance(value, dict) else [f for _, f in _fragments(value)]
    for call in calls:
        if "id" in call:
            call["id"] = "call_0"


def _calls_as_text(chunks: list[dict[str, Any]]) -> None:
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            fragments = delta.pop("tool_calls", None)
            if fragments:
                delta["content"] = "".join(
                    (f.get("function") or {}).get("arguments") or "" for f in fragments
                )
            if choice.get("finish_reason") == "tool_calls":
                choice["finish_reason"] = "stop"


def _lax_tool_choice(body: dict[str, Any]) -> dict[str, Any]:
    choice, tools = body.get("tool_choice"), body.get("tools") or []
    names = {(t.get("function") or {}).get("name") for t in tools if isinstance(t, dict)}
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    named = isinstance(choice, dict) and choice.get("type") == "function" and name in names
    valid = choice in ("none", "auto", "required") or named
    if choice is None or (tools and valid):
        return body
    return {k: v for k, v in body.items() if k != "tool_choice"}


def _completions_logprobs(body: dict[str, Any]) -> None:
    for choice in body.get("choices") or []:
        entries = (choice.get("logprobs") or {}).get("content")
        if not entries or not any(e["top_logprobs"] for e in entries):
            continue  # only answers with top_logprobs: the ones the logprobs checks ask for
        offsets = [sum(len(e["token"]) for e in entries[:i]) for i in range(len(entries))]
        choice["logprobs"] = {
            "tokens": [e["token"] for e in entries],
            "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [
                {t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries
            ],
            "text_offset": offsets,
        }


def _entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        entry
        for choice in body.get("choices") or []
        for entry in (choice.get("logprobs") or {}).get("content") or []
    ]


def _trimmed_tokens(body: dict[str, Any]) -> None:
    for entry in _entries(body):
        entry["token"] = entry["token"].lstrip()
        entry["bytes"] = list(entry["token"].encode("utf-8"))


def _runner_up_above(body: dict[str, Any]) -> None:
    for entry in _entries(body):
        if len(entry["top_logprobs"]) >= 2:
            entry["top_logprobs"][1]["logprob"] = min(0.0, entry["logprob"] + 0.5)


def _one_fewer_top_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    top = body.get("top_logprobs")
    return {**body, "top_logprobs": top - 1} if isinstance(top, int) and top > 0 else body


def _text_chunks_without_logprobs(chunks: list[dict[str, Any]]) -> None:
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if (choice.get("delta") or {}).get("content") and choice.get("logprobs"):
                choice["logprobs"] = None


def _leave_out(*keys: str, when: Callable[[dict[str, Any]], bool] = lambda body: True) -> Hook:
    """A request hook leaving ``keys`` out of requests for which ``when`` holds."""
    return lambda body: {k: v for k, v in body.items() if k not in keys} if when(body) else body


# property group: prop_valid_requests, prop_invalid_requests, schemathesis_openapi
_RARE_PARAMS = (
    "metadata",
    "store",
    "service_tier",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "reasoning_effort",
    "verbosity",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "moderation",
)
_SAMPLING_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


def _crash_on_stop_list(body: dict[str, Any]) -> dict[str, Any]:
    from mockserver._errors import ApiError

    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) >= 2:
        raise ApiError(500, "The server had an error processing your request.")
    return body


def _drop_rare_params(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _RARE_PARAMS}


def _clamp_sampling(body: dict[str, Any]) -> dict[str, Any]:
    clamped = dict(body)
    for key, (low, high) in _SAMPLING_RANGES.items():
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            clamped[key] = min(max(value, low), high)
    return clamped


# response_format (conformance group json): hooks.


def _broken_json(body: dict[str, Any]) -> dict[str, Any]:
    """JSON answers lose their last character (text answers are left alone)."""

    def broken(choice: dict[str, Any]) -> dict[str, Any]:
        message = choice.get("message") or {}
        content = message.get("content")
        try:
            parsed = json.loads(content) if isinstance(content, str) else None
        except ValueError:
            parsed = None
        if not isinstance(content, str) or not isinstance(parsed, dict):
            return choice
        return {**choice, "message": {**message, "content": content[:-1]}}

    return {**body, "choices": [broken(c) for c in body.get("choices") or []]}


_TABLE = (
    Defect(
        "wrong-object",
        "resp_schema",
        'Non-stream answers say object "text_completion" instead of "chat.completion".',
        {"completion": _set("object", "text_completion")},
    ),
    Defect(
        "chunk-id-integer",
        "chunk_schema",
        "Stream chunks give their id as an integer, not a string (the same in every chunk).",
        {"chunks": lambda chunks: [{**c, "id": 1731584707} for c in chunks]},
    ),
    Defect(
        "missing-done",
        "sse_done",
        "The stream ends without the final data: [DONE] event.",
        {"events": lambda events: events[:-1]},
    ),
    Defect(
        "null-event",
        "sse_done",
        "A data: null event is sent before [DONE].",
        {"events": lambda events: [*events[:-1], b"data: null\n\n", events[-1]]},
    ),
    Defect(
        "stream-content-type",
        "sse_done",
        "Streams are served as application/json instead of text/event-stream.",
        {"stream_content_type": lambda _: "application/json"},
    ),
    Defect(
        "unstable-chunk-id",
        "chunk_meta_stable",
        "Every chunk of a stream carries a different id.",
        {"chunks": _numbered_ids},
        also_caught_by=("n_stream",),  # the chunks of an n > 1 stream do not share an id
    ),
    Defect(
        "flat-error",
        "err_envelope",
        'Errors are answered as {"detail": "..."} instead of the OpenAI envelope.',
        {"error": _flat_error},
        # the errors checks read the envelope of 400, 401 and 429 answers too
        also_caught_by=(
            "models_list",
            "err_stream_prestart",
            "err_context_length",
            "err_auth",
            "err_429_503",
        ),
    ),
    Defect(
        "500-on-bad-request",
        "err_4xx_not_5xx",
        "Invalid requests get status 500 instead of 400.",
        {"error": _server_error},
        # usage_opt_in: stream_options without stream gets 500; the response checks: five
        # stops, bad logit_bias keys and out-of-range top_k get 500
        # err_stream_prestart, err_context_length, rf_json: their 400s become 500s
        also_caught_by=(
            "usage_opt_in",
            "stop",
            "logit_bias",
            "ext_sampling",
            "err_stream_prestart",
            "err_context_length",
            "rf_json",
            "lp_count",  # top_logprobs=21
            "tool_invalid",  # bad tool_choice
        ),
    ),
    Defect(
        "model-list-incomplete",
        "models_list",
        "GET /models lists entries without created and owned_by.",
        {"models": _bad_model_entries},
    ),
    Defect(
        "unknown-model-200",
        "models_list",
        "GET /models/{id} answers 200 for a model it does not serve.",
        {"retrieve_unknown": lambda _: True},
    ),
    # Stream chunks, usage and n > 1 (conformance groups stream, usage, n).
    Defect(
        "role-repeated",
        "role_first_only",
        'Every delta repeats role "assistant", not only the first of each choice.',
        {"chunks": _each_choice(lambda c: {**c, "delta": {"role": "assistant", **c["delta"]}})},
    ),
    Defect(
        "finish-without-delta",
        "delta_present",
        "The finish chunk's choice has no delta object.",
        {"chunks": _each_choice(lambda c: c if c["finish_reason"] is None else _drop(c, "delta"))},
        also_caught_by=("chunk_schema",),  # delta is required by the chunk schema
    ),
    Defect(
        "finish-twice",
        "finish_once",
        "The finish chunk is sent twice.",
        {"chunks": _plain(lambda chunks: [x for c in chunks for x in [c] * (1 + _finishes(c))])},
        also_caught_by=("n_stream",),  # each index of an n > 1 stream finishes twice too
    ),
    Defect(
        "content-after-finish",
        "nothing_after_finish",
        "A content delta follows each choice's finish chunk.",
        {"chunks": _plain(_content_after_finish)},
        also_caught_by=("stream_eq_nonstream",),  # the joined text gains the late content
    ),
    Defect(
        "content-in-finish-chunk",
        "finish_empty_delta",
        "Each choice's last piece of text rides in its finish chunk.",
        {"chunks": _plain(_content_in_finish)},
    ),
    Defect(
        "empty-choices-mid-stream",
        "no_empty_choices_unless_usage",
        "A chunk with choices [] and no usage comes after the first chunk.",
        {"chunks": _empty_choices_chunk},
    ),
    Defect(
        "stream-drops-first-token",
        "stream_eq_nonstream",
        "Streams lose the first piece of text of each choice.",
        {"chunks": _plain(_drop_first_token)},
        # rf_json: a streamed JSON answer without its first token is no JSON
        also_caught_by=("rf_json",),
    ),
    Defect(
        "usage-total-wrong",
        "usage_nonstream",
        "Non-stream usage says total_tokens one more than prompt + completion.",
        {"completion": _usage_total_off},
    ),
    Defect(
        "usage-without-opt-in",
        "usage_opt_in",
        "Every stream ends with a usage chunk, include_usage or not.",
        {
            "request": lambda r: (
                {**r, "stream_options": {"include_usage": True}} if r.get("stream") else r
            )
        },
    ),
    Defect(
        "stream-options-without-stream",
        "usage_opt_in",
        "stream_options is accepted (and ignored) when stream is false.",
        {"request_raw": lambda r: r if r.get("stream") else _drop(r, "stream_options")},
    ),
    Defect(
        "no-usage-chunk",
        "usage_final_chunk",
        "include_usage is ignored: no usage chunk ends the stream.",
        {"request": lambda r: _drop(r, "stream_options")},
    ),
    Defect(
        "usage-in-every-chunk",
        "usage_final_chunk",
        "With include_usage, every chunk carries the final usage, not null.",
        {"chunks": _usage_everywhere},
    ),
    Defect(
        "stream-usage-differs",
        "usage_stream_eq_nonstream",
        "The usage chunk counts one prompt token more than the non-stream answer.",
        {"chunks": _stream_usage(_more_prompt)},
    ),
    Defect(
        "stream-usage-zero-with-tools",
        "usage_stream_eq_nonstream",
        "The usage chunk of a stream with tool calls counts zero tokens.",
        {"chunks": _zero_usage_with_tools},
    ),
    Defect(
        "n-ignored",
        "n_nonstream",
        "Non-stream answers keep only the first of n choices.",
        {"completion": lambda body: {**body, "choices": body["choices"][:1]}},
    ),
    Defect(
        "n-stream-missing-finish",
        "n_stream",
        "In a stream with n > 1, only choice 0 gets a finish_reason.",
        {"chunks": _each_choice(lambda c: c if c["index"] == 0 else {**c, "finish_reason": None})},
    ),
    Defect(
        "n-stream-index-zero",
        "n_stream",
        "Every choice of a stream says index 0, whatever n is.",
        {"chunks": _each_choice(lambda c: {**c, "index": 0})},
    ),
    # Response shape and request acceptance (conformance group response).
    Defect(
        "no-content-with-tool-calls",
        "content_nullability",
        "Non-stream answers with tool_calls leave the content key out (not null).",
        {"completion": _no_content_with_tool_calls},
    ),
    Defect(
        "user-extra-forbidden",
        "accept_std_params",
        "The standard 'user' parameter is refused with 422 extra_forbidden.",
        {"request_raw": _refuse_user},
        # survives_abuse sends user too
        also_caught_by=("survives_abuse",),
    ),
    Defect(
        "max-completion-tokens-ignored",
        "max_completion_tokens",
        "max_completion_tokens is ignored on text requests (only max_tokens caps them).",
        {"request": _untooled(_without("max_completion_tokens"))},
    ),
    Defect(
        "content-parts-rejected",
        "content_parts",
        'Message content given as [{"type": "text"}] parts is refused with 400.',
        {"request_raw": _refuse_content_parts},
    ),
    Defect(
        "empty-assistant-content-rejected",
        "history_null_content",
        'Assistant history messages with content "" are refused with 400.',
        {"request_raw": _refuse_empty_assistant},
    ),
    Defect(
        "stop-ignored",
        "stop",
        "Stop strings are ignored: the answer runs on past them.",
        {"request": _without("stop")},
    ),
    Defect(
        "logit-bias-unchecked",
        "logit_bias",
        "logit_bias keys are not checked: non-integer and out-of-vocab keys are accepted.",
        {"request_raw": _without("logit_bias")},
    ),
    Defect(
        "ext-sampling-unchecked",
        "ext_sampling",
        "top_k, min_p and repetition_penalty are dropped unchecked, out-of-range values too.",
        {"request_raw": _without("top_k", "min_p", "repetition_penalty")},
    ),
    # Errors (conformance group errors).
    Defect(
        "stream-error-as-sse",
        "err_stream_prestart",
        "A stream request that fails validation gets a 200 stream holding the error event.",
        {"stream_error": lambda _: True},
    ),
    Defect(
        "midstream-silent-close",
        "err_midstream",
        "An error after a stream started closes the connection without an error event.",
        {"fault": _silent_close},
    ),
    Defect(
        "context-length-500",
        "err_context_length",
        "A prompt longer than the context gets 500 instead of 400.",
        {"error": _status_for("context_length_exceeded", 500)},
    ),
    Defect(
        "auth-not-enforced",
        "err_auth",
        "Requests without the API key, or with a wrong one, are answered.",
        {"auth": lambda _: False},
    ),
    Defect(
        "unknown-model-500",
        "err_model_404",
        "A request for a model that is not served gets 500 instead of 404.",
        {"error": _status_for("model_not_found", 500)},
        also_caught_by=("models_list",),  # GET /models/{unknown} gets 500 too
    ),
    Defect(
        "rate-limit-as-500",
        "err_429_503",
        "Rate limiting and overload are answered with 500 instead of 429 and 503.",
        {"error": lambda a: _status_for(503, 500)(_status_for(429, 500)(a))},
    ),
    Defect(
        "abuse-poisons-user",
        "survives_abuse",
        "After a refused request, every later request of the same user gets 500.",
        stateful=_poison_after_refusal,
    ),
    Defect(
        "traceback-in-error",
        "no_leak_internals",
        "400 messages end with a Python traceback and the server's file paths.",
        {"error": _with_traceback},
    ),
    # Tools, logprobs and sampling (conformance groups tools, logprobs, sampling).
    Defect(
        "tool-arguments-object",
        "tool_nonstream",
        "Non-stream tool calls carry arguments as a JSON object, not a JSON string (Ollama).",
        {"completion": _copied(_arguments_as_objects)},
    ),
    Defect(
        "tool-name-late",
        "tool_stream_first",
        "The first delta of a streamed call has no function name; the second carries it.",
        {"chunks": _copied(_name_in_second_delta)},
    ),
    Defect(
        "tool-id-changes",
        "tool_stream_cont",
        "Later deltas of a streamed call carry an id different from the first delta's.",
        {"chunks": _copied(_changing_ids)},
    ),
    Defect(
        "tool-calls-as-text",
        "tool_stream_not_dropped",
        "Streams with tools send the call's arguments as content and finish with stop.",
        {"chunks": _copied(_calls_as_text)},
    ),
    Defect(
        "tool-ids-repeated",
        "tool_parallel",
        'Every tool call has the id "call_0", so parallel calls share it.',
        {"completion": _copied(_same_ids), "chunks": _copied(_same_ids)},
    ),
    Defect(
        "parallel-tool-calls-ignored",
        "tool_parallel",
        "parallel_tool_calls=false is ignored: required calls every tool.",
        {"request": _leave_out("parallel_tool_calls")},
    ),
    Defect(
        "tool-choice-none-ignored",
        "tool_none_roundtrip",
        'tool_choice "none" is treated as "auto", so the tools get called.',
        {
            "request": lambda r: (
                {**r, "tool_choice": "auto"} if r.get("tool_choice") == "none" else r
            )
        },
    ),
    Defect(
        "tool-choice-unchecked",
        "tool_invalid",
        "An unknown named tool, tool_choice without tools or tool_choice {} is dropped, not 400.",
        {"request_raw": _lax_tool_choice},
    ),
    Defect(
        "tool-call-past-limit",
        "tool_invalid",
        "max_completion_tokens is ignored when tools are given, so a required call completes.",
        {"request": _leave_out("max_completion_tokens", when=lambda r: bool(r.get("tools")))},
    ),
    Defect(
        "logprobs-completions-shape",
        "lp_shape",
        "Chat logprobs come in the legacy completions shape (tokens, token_logprobs, ...).",
        {"completion": _copied(_completions_logprobs)},
        also_caught_by=("lp_count",),  # the alternatives cannot be counted either
    ),
    Defect(
        "logprobs-tokens-trimmed",
        "lp_shape",
        "logprobs tokens lose their leading spaces, so they no longer spell the content.",
        {"completion": _copied(_trimmed_tokens)},
    ),
    Defect(
        "top-logprobs-one-short",
        "lp_count",
        "top_logprobs=k gives k - 1 alternatives per token.",
        {"request_raw": _one_fewer_top_logprobs},
    ),
    Defect(
        "stream-without-logprobs",
        "lp_stream",
        "Streamed chunks with text carry logprobs null although logprobs were asked for.",
        {"chunks": _copied(_text_chunks_without_logprobs)},
    ),
    Defect(
        "greedy-not-argmax",
        "greedy_is_argmax",
        "top_logprobs list an alternative more likely than the token sampled at temperature 0.",
        {"completion": _copied(_runner_up_above)},
    ),
    Defect(
        "top-k-ignored",
        "sampled_in_topk",
        "top_k > 1 is accepted and ignored.",
        {"request": _leave_out("top_k", when=lambda r: (r.get("top_k") or 0) > 1)},
        generate=True,
    ),
    Defect(
        "top-k-1-ignored",
        "top_k1_equals_greedy",
        "top_k=1 is taken to mean no top-k (as 0 and -1 do).",
        {"request": _leave_out("top_k", when=lambda r: r.get("top_k") == 1)},
        generate=True,
    ),
    Defect(
        "top-p-ignored",
        "sampled_in_nucleus",
        "top_p is accepted and ignored.",
        {"request": _leave_out("top_p")},
        generate=True,
    ),
    Defect(
        "min-p-ignored",
        "sampled_above_min_p",
        "min_p is accepted and ignored.",
        {"request": _leave_out("min_p")},
        generate=True,
    ),
    Defect(
        "penalties-ignored",
        "penalties_lower_repetition",
        "frequency_penalty and presence_penalty are accepted and ignored.",
        {"request": _leave_out("frequency_penalty", "presence_penalty")},
        generate=True,
    ),
    # property group: prop_valid_requests, prop_invalid_requests, schemathesis_openapi
    Defect(
        "500-on-stop-list",
        "prop_valid_requests",
        "A valid request whose stop is a list of two or more strings gets 500.",
        {"request": _crash_on_stop_list},
        also_caught_by=("schemathesis_openapi",),  # its valid cases have stop lists too
    ),
    Defect(
        "rare-params-unchecked",
        "schemathesis_openapi",
        "Parameters few clients send (metadata, store, service_tier, audio, ...) are dropped "
        "unvalidated, so wrong values there get 200.",
        {"request_raw": _drop_rare_params},
    ),
    Defect(
        "sampling-params-clamped",
        "prop_invalid_requests",
        "Out-of-range temperature, top_p and penalties are clamped into range and answered 200.",
        {"request_raw": _clamp_sampling},
        also_caught_by=("err_4xx_not_5xx",),  # it sends temperature 3
    ),
    # response_format (conformance group json).
    Defect(
        "json-object-invalid",
        "rf_json",
        "Non-stream JSON answers (json_object, json_schema) are cut by one character.",
        {"completion": _broken_json},
    ),
    # Seed (conformance group seed), shown in generate mode.
    Defect(
        "seed-ignored",
        "seed_repro",
        "The seed is ignored: every answer is a fresh sample.",
        {"request": lambda body: {k: v for k, v in body.items() if k != "seed"}},
        generate=True,
    ),
)

# Reference mode (conformance checks ref_*): hooks, shown in generate mode with --reference.


def _default_repetition_penalty(body: dict[str, Any]) -> dict[str, Any]:
    # What a server does when its generation_config.json sets defaults the request left out.
    return (
        body if body.get("repetition_penalty") is not None else {**body, "repetition_penalty": 1.3}
    )


def _shift_logprobs(body: dict[str, Any]) -> None:
    for choice in body.get("choices", []):
        for entry in (choice.get("logprobs") or {}).get("content") or []:
            for item in [entry, *(entry.get("top_logprobs") or [])]:
                item["logprob"] -= 0.1


def _min_p_dropped_with_top_p(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "min_p"} if "top_p" in body else body


_REFERENCE_TABLE = (
    Defect(
        "default-repetition-penalty",
        "ref_greedy_chain",
        "A repetition_penalty of 1.3 applies when the request leaves it out (a server default).",
        {"request": _default_repetition_penalty},
        also_caught_by=("ref_sampling_fit",),
        reference=True,
    ),
    Defect(
        "logprobs-shifted",
        "ref_logprobs",
        "Every returned logprob is 0.1 nats lower than the model's.",
        {"completion": _copied(_shift_logprobs)},
        reference=True,
    ),
    Defect(
        "min-p-dropped-with-top-p",
        "ref_sampling_fit",
        "min_p is ignored whenever top_p is also set.",
        {"request": _min_p_dropped_with_top_p},
        reference=True,
    ),
)


# property group: the broad checks also see behaviours that dedicated checks own; they are
# added to those defects' also_caught_by here, in one place. Each entry comes from a request
# the check always sends (its explicit requests, or every MUTATIONS row): what schemathesis
# draws varies with the modules loaded (hypothesis mixes in constants of local source).
_VALID, _INVALID, _OPENAPI = "prop_valid_requests", "prop_invalid_requests", "schemathesis_openapi"
_PROPERTY_ALSO: dict[str, tuple[str, ...]] = {
    "500-on-bad-request": (_INVALID, _OPENAPI),
    "chunk-id-integer": (_VALID, _OPENAPI),
    "content-parts-rejected": (_VALID,),
    "finish-without-delta": (_VALID, _OPENAPI),
    "flat-error": (_INVALID, _OPENAPI),
    "logit-bias-unchecked": (_INVALID,),
    "logprobs-completions-shape": (_VALID, _OPENAPI),  # their valid requests with top_logprobs
    "missing-done": (_VALID, _OPENAPI),
    "model-list-incomplete": (_OPENAPI,),
    "no-content-with-tool-calls": (_OPENAPI,),
    "null-event": (_VALID, _OPENAPI),
    "stream-content-type": (_VALID, _OPENAPI),
    "stream-error-as-sse": (_OPENAPI,),
    "tool-arguments-object": (_OPENAPI,),  # its explicit tool-call request
    "tool-choice-unchecked": (_OPENAPI,),
    "user-extra-forbidden": (_VALID,),
    "wrong-object": (_VALID, _OPENAPI),
}

DEFECTS: dict[str, Defect] = {
    d.name: replace(d, also_caught_by=d.also_caught_by + _PROPERTY_ALSO.get(d.name, ()))
    for d in (*_TABLE, *_REFERENCE_TABLE)
}


class ActiveDefects:
    """The hooks of the active defects by stage, bound once per server (stateful hooks made
    afresh for it)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = tuple(names)
        self._stages: dict[str, list[Hook]] = {}
        for name in self.names:
            defect = DEFECTS[name]
            hooks = {**defect.hooks, **(defect.stateful() if defect.stateful else {})}
            for stage, hook in hooks.items():
                self._stages.setdefault(stage, []).append(hook)

    def __bool__(self) -> bool:
        return bool(self.names)

    def apply(self, stage: str, value: Any) -> Any:
        """``value`` passed through the hook of every active defect at ``stage``."""
        for hook in self._stages.get(stage, ()):
            value = hook(value)
        return value
