"""Scripted replies: answers a test queues for the next chat completion requests (the pytest
plugin's ``chat_mock.reply(...)``, ``POST /_chatcompat/replies``).

A :class:`Reply` is a message (content, tool calls, a refusal, logprobs, usage, a finish
reason), exact stream chunks, or an error (a status and its envelope's fields). It answers the
first request it matches (its model, a substring of the last user message, a subset of the
body, a predicate; nothing: any request), ``times`` times (None: for as long as it stays
queued). A message becomes a neutral :class:`~mockserver._answer.Answer` that the pipeline
shapes, encodes and delivers as any other (flavour, SSE framing, include_usage, timing,
faults); chunks answer stream requests only, each chunk one event, then ``[DONE]``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from mockserver._answer import Answer, Choice, Token, Usage
from mockserver._errors import ApiError
from mockserver._tokens import count_prompt_tokens, pieces

__all__ = ["Reply", "ScriptedReplies", "reply_answer", "reply_from_json"]

Predicate = Callable[[dict[str, Any]], bool]  # the parsed request body -> whether it matches

_MESSAGE_FIELDS = ("content", "tool_calls", "refusal", "logprobs", "usage", "finish_reason")


@dataclass(frozen=True)
class Reply:
    """One scripted reply and the requests it answers. ValueError for a reply that mixes
    kinds (a message, ``chunks``, an error ``status``) or has a malformed field."""

    content: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()  # {"name", "arguments" (str or JSON), "id"?}
    refusal: str | None = None
    logprobs: tuple[dict[str, Any], ...] | None = None  # {"token", "logprob", ...} per token
    usage: Mapping[str, int] | None = None  # prompt_tokens / completion_tokens (else counted)
    finish_reason: str | None = None  # default: tool_calls with tool calls, else stop
    chunks: tuple[dict[str, Any] | str, ...] | None = None  # a dict: JSON data; a str: as is
    done: bool = True  # chunks end with ``data: [DONE]``
    status: int | None = None  # >= 400: an error reply
    error: Mapping[str, Any] | None = None  # the envelope's message / type / param / code
    headers: Mapping[str, str] = field(default_factory=dict)  # an error reply's headers
    model: str | None = None  # matches requests for this model only
    contains: str | None = None  # matches a last user message holding this text
    match: Mapping[str, Any] | None = None  # matches a body holding this (a JSON subset)
    predicate: Predicate | None = None  # matches a body it returns True for
    times: int | None = 1  # the requests it answers; None: every one

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple(map(_tool_call, self.tool_calls)))
        if self.logprobs is not None:
            object.__setattr__(self, "logprobs", tuple(map(_logprob_entry, self.logprobs)))
            text = "".join(e["token"] for e in self.logprobs)
            if self.content is not None and self.content != text:
                raise ValueError("content must be the logprobs tokens joined, or left out")
        if self.chunks is not None:
            object.__setattr__(self, "chunks", tuple(self.chunks))
            if not all(isinstance(c, (dict, str)) for c in self.chunks):
                raise ValueError("chunks must be JSON objects or strings")
        kinds = [self.chunks is not None, self.status is not None, self._is_message]
        if sum(kinds) > 1:
            raise ValueError("a reply is a message, stream chunks or an error status, not two")
        if self.status is not None and not (isinstance(self.status, int) and self.status >= 400):
            raise ValueError(f"status must be an HTTP error status >= 400, got {self.status!r}")
        if self.error is not None and self.status is None:
            raise ValueError("an error needs its status")
        if self.times is not None and not (isinstance(self.times, int) and self.times >= 1):
            raise ValueError(f"times must be >= 1 or None (every request), got {self.times!r}")
        for name in ("content", "refusal", "finish_reason", "model", "contains"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {value!r}")
        if self.usage is not None and not all(
            k in ("prompt_tokens", "completion_tokens") and isinstance(v, int) and v >= 0
            for k, v in self.usage.items()
        ):
            raise ValueError("usage holds prompt_tokens and completion_tokens, integers >= 0")

    @property
    def _is_message(self) -> bool:
        return any(getattr(self, name) not in (None, ()) for name in _MESSAGE_FIELDS)

    def matches(self, body: Mapping[str, Any]) -> bool:
        """Whether this reply answers the request ``body`` (parsed, valid)."""
        if self.chunks is not None and body.get("stream") is not True:
            return False
        if self.model is not None and body.get("model") != self.model:
            return False
        if self.contains is not None and self.contains not in _last_user_text(body):
            return False
        if self.match is not None and not _holds(body, self.match):
            return False
        return self.predicate is None or bool(self.predicate(dict(body)))

    def described(self) -> dict[str, Any]:
        """The reply as JSON: its fields that are set (a predicate by its name)."""
        shown: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value in (None, (), {}) and item.name != "times":
                continue
            if item.name == "done" and (value or self.chunks is None):
                continue
            if item.name == "predicate":
                value = getattr(value, "__qualname__", repr(value))
            shown[item.name] = value
        return shown

    def raise_error(self) -> None:
        """Raise this error reply as an ApiError (its status, envelope fields and headers)."""
        fields_ = dict(self.error or {})
        raise ApiError(
            self.status or 500,
            str(fields_.get("message", f"Scripted error {self.status}.")),
            param=fields_.get("param"),
            code=fields_.get("code"),
            type=fields_.get("type"),
            headers=dict(self.headers),
        )


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call in OpenAI's shape, from ``{"name", "arguments", "id"?}`` or that shape."""
    if not isinstance(call, Mapping):
        raise ValueError(f"a tool call must be an object, got {call!r}")
    function = call.get("function", call)
    name, arguments = function.get("name"), function.get("arguments", {})
    if not isinstance(name, str) or not name:
        raise ValueError(f"a tool call needs a function name, got {call!r}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    call_id = call.get("id") or f"call_scripted_{name}"
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _logprob_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A chat logprobs entry with its bytes and top_logprobs filled in."""
    if not (isinstance(entry, Mapping) and isinstance(entry.get("token"), str)):
        raise ValueError(f"a logprobs entry needs a token, got {entry!r}")
    if not isinstance(entry.get("logprob"), (int, float)):
        raise ValueError(f"a logprobs entry needs a number logprob, got {entry!r}")
    token = entry["token"]
    return {"bytes": list(token.encode("utf-8")), "top_logprobs": [], **entry}


def _last_user_text(body: Mapping[str, Any]) -> str:
    """The text of the last user message (its string content, or its text parts joined)."""
    messages = body.get("messages") or []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else ""
    return ""


def _holds(value: Any, subset: Any) -> bool:
    """Whether ``value`` holds ``subset``: an object each of its keys (recursively), any other
    value equal."""
    if isinstance(subset, Mapping):
        return isinstance(value, Mapping) and all(
            key in value and _holds(value[key], item) for key, item in subset.items()
        )
    return bool(value == subset)


def reply_from_json(data: Any) -> Reply:
    """The reply described by JSON ``data`` (the control route's body); ValueError naming
    what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError("a reply must be a JSON object")
    known = {f.name for f in fields(Reply)} - {"predicate"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown reply field(s) {unknown}; known: {sorted(known)}")
    for name in ("tool_calls", "logprobs", "chunks"):
        if name in data and data[name] is not None and not isinstance(data[name], list):
            raise ValueError(f"{name} must be a list")
    for name in ("usage", "error", "headers", "match"):
        if name in data and data[name] is not None and not isinstance(data[name], dict):
            raise ValueError(f"{name} must be an object")
    try:
        given: dict[str, Any] = {k: tuple(v) if k == "tool_calls" else v for k, v in data.items()}
        return Reply(**given)
    except (TypeError, AttributeError) as exc:
        raise ValueError(str(exc)) from None


def _tool_tokens(calls: Sequence[dict[str, Any]]) -> list[Token]:
    """The stream steps of ``calls``: each call's head, then its arguments piece by piece."""
    tokens = []
    for index, call in enumerate(calls):
        function = call["function"]
        head = {**call, "index": index, "function": {"name": function["name"], "arguments": ""}}
        tokens.append(Token(tool_calls=(head,)))
        for part in pieces(function["arguments"]):
            tokens.append(Token(tool_calls=({"index": index, "function": {"arguments": part}},)))
    return tokens


def _reply_tokens(reply: Reply) -> list[Token]:
    """The message of ``reply`` as stream steps: text (a step per logprobs entry, when given)
    or refusal pieces, then the tool calls."""
    if reply.logprobs is not None:
        tokens = [Token(e["token"], logprobs=(e,)) for e in reply.logprobs]
    elif reply.refusal is not None:
        tokens = [Token(refusal=part) for part in pieces(reply.refusal)]
    else:
        tokens = [Token(part) for part in pieces(reply.content or "")]
    return tokens + _tool_tokens(reply.tool_calls)


def reply_answer(
    reply: Reply, body: Mapping[str, Any], *, completion_id: str, created: int
) -> Answer:
    """The answer of the message ``reply`` to the valid request ``body``: each of its ``n``
    choices the same message; usage as scripted, else the prompt counted as the template
    counts it and a completion token per step (+1 for the end of the turn)."""
    tokens = tuple(_reply_tokens(reply))
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    n = body.get("n") or 1
    usage = reply.usage or {}
    prompt = usage.get("prompt_tokens", count_prompt_tokens(body["messages"]))
    completion = usage.get("completion_tokens", n * (len(tokens) + 1))
    return Answer(
        id=completion_id,
        created=created,
        model=body["model"],
        choices=tuple(Choice(i, tokens, finish) for i in range(n)),
        usage=Usage(prompt, completion),
        logprobs=bool(body.get("logprobs")) or reply.logprobs is not None,
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
    )


@dataclass
class _Queued:
    reply: Reply
    left: int | None  # requests it still answers; None: every one


class ScriptedReplies:
    """The queue of scripted replies, in the order they were added; the first that matches a
    request answers it. Safe to use from the test's thread while the server's thread takes."""

    def __init__(self) -> None:
        self._queue: list[_Queued] = []
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._queue)

    def add(self, reply: Reply) -> Reply:
        """Queue ``reply`` after the others."""
        with self._lock:
            self._queue.append(_Queued(reply, reply.times))
        return reply

    def first(self, body: Mapping[str, Any]) -> Reply | None:
        """The first queued reply matching ``body``; None: none does."""
        with self._lock:
            return next((q.reply for q in self._queue if q.reply.matches(body)), None)

    def use(self, reply: Reply) -> None:
        """Count one use of the queued ``reply`` (dropped when it has none left)."""
        with self._lock:
            for index, queued in enumerate(self._queue):
                if queued.reply is reply:
                    if queued.left is not None:
                        queued.left -= 1
                        if queued.left <= 0:
                            del self._queue[index]
                    return

    def pending(self) -> list[tuple[Reply, int | None]]:
        """Each queued reply and the requests it still answers (None: every one)."""
        with self._lock:
            return [(q.reply, q.left) for q in self._queue]

    def unused(self) -> list[tuple[Reply, int]]:
        """The replies with requests left to answer (not those queued for every request)."""
        return [(reply, left) for reply, left in self.pending() if left is not None]

    def clear(self) -> None:
        """Forget every queued reply."""
        with self._lock:
            self._queue.clear()
