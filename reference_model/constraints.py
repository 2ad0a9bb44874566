"""What each token of a choice may be, and what it writes: the *rule* of a choice.

- :class:`PlainText`: free text; the sampler chooses every token; a stop token or a stop string
  (matched on decoded text, so across tokens; excluded from the text; text that could still
  begin one is held back until it cannot) finishes it ``stop``.
- :class:`Template`: what is approximated (the model is tiny and untrained for this), forced
  text and constrained free segments; forced tokens are fed to the model and counted, and their
  logprob is the raw logprob of the forced token.

  - ``response_format`` ``json_object`` (and ``json_schema`` without ``properties``): output is
    ``{"text": "<free>"}`` (:func:`format_template`); the free string allows only
    printable-ASCII tokens without ``"`` or ``\\``, ends when the model draws a stop token (that
    draw is discarded: not output, not counted) or after 24 tokens, and always leaves room in
    ``max_tokens`` for the closing ``"}`` if it can. ``json_schema`` with ``properties``: the
    object of its required properties, filled as tool parameters are (below; nested objects
    likewise, arrays ``[]``); string lengths, patterns and formats are not followed.
  - forced tool calls (:func:`calls_template`; which tools: ``chatcompat.request_rules``
    ``forced_tools``): one call per forced tool, one after another, each as the chat format
    renders an assistant tool call (``chat_format.tool_call_text``:
    ``{"name": NAME, "parameters": {...}}``); each required parameter gets a free string (type
    string), a free 1-3 token number (integer/number), ``true`` (boolean), its first enum value
    (enum), an object of its own required properties (object), ``[]`` (array) or ``null``. Each
    step's text is the calls' text and its :class:`CallPiece` says which call it writes and
    which of its characters are arguments; the finishing step has the whole calls
    (:class:`ToolCall`), finish ``tool_calls``. Cut by the token limit, the choice finishes
    ``length`` with no calls: its text is what it wrote.
  - A template that finishes (``stop`` / ``tool_calls``) is valid JSON: a number always gets its
    first digit, a string may stay empty.
  - The forced text of a template is counted as it is built (``chatcompat.request_rules``
    ``BuildBudget``, 16 KiB; the model's context holds 2048 tokens anyway): past it the request
    is a 400 ``answer_too_large``, before the rest is built or tokenized.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from chatcompat.request_rules import BuildBudget

from .chat_format import tool_call_frame
from .tokenizer import Tokenizer

__all__ = [
    "CallPiece",
    "FinishReason",
    "Pick",
    "PlainText",
    "Rule",
    "Template",
    "TextStream",
    "ToolCall",
    "Written",
    "calls_template",
    "format_template",
]

FinishReason = Literal["stop", "length", "tool_calls"]
_STRING_TOKENS = 24  # longest free string segment
_DIGIT_TOKENS = 3  # longest free number


@dataclass(frozen=True)
class ToolCall:
    """One whole forced call."""

    name: str
    arguments: str  # JSON text


@dataclass(frozen=True)
class CallPiece:
    """What one step wrote of a forced tool call."""

    index: int  # which call of the choice (0-based, in the order of the forced tools)
    name: str  # the called function
    arguments: str  # the characters of the step's text that are the call's arguments (or "")


class TextStream:
    """Bytes in, releasable text out: whole characters only, stop strings held back."""

    def __init__(self, stops: Sequence[str]) -> None:
        assert all(stops), "a stop string cannot be empty"
        self.stops = list(stops)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.emitted = 0

    def push(self, data: bytes) -> tuple[str, bool]:
        """Feed bytes; return (text to release now, whether a stop string was hit)."""
        self.text += self.decoder.decode(data)
        hits = [i for i in (self.text.find(s, self.emitted) for s in self.stops) if i >= 0]
        if hits:
            out, self.emitted = self.text[self.emitted : min(hits)], len(self.text)
            return out, True
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])),
            default=0,
        )
        end = max(self.emitted, len(self.text) - hold)
        out, self.emitted = self.text[self.emitted : end], end
        return out, False

    def flush(self) -> str:
        out, self.emitted = self.text[self.emitted :], len(self.text)
        return out


@dataclass(frozen=True)
class Pick:
    """How the next token is chosen: ``forced`` (that id), else sampled among ``allowed``
    (bool [V]; None: any token)."""

    forced: int | None = None
    allowed: Tensor | None = None


@dataclass(frozen=True)
class Written:
    """What a token wrote: text, finish, and for a forced call its piece (and the whole calls
    on the finishing step)."""

    text: str
    finish: FinishReason | None = None
    call: CallPiece | None = None
    tool_calls: tuple[ToolCall, ...] = ()


class Rule(Protocol):
    """What the next token of a choice may be, and what each token writes."""

    def pick(self, left: int) -> Pick | None:
        """How to choose the next token with ``left`` tokens of budget; None: the output is
        whole (its last step has already finished it)."""

    def drawn(self, token: int) -> bool:
        """Whether a sampled ``token`` is kept (False: the draw is discarded)."""

    def wrote(self, token: int, left: int) -> Written:
        """What kept ``token`` writes, ``left`` tokens of budget remaining after it."""


class PlainText:
    """Free text: every token sampled; a stop token or a stop string finishes it ``stop``."""

    def __init__(self, tokenizer: Tokenizer, stops: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stream = TextStream(stops)

    def pick(self, left: int) -> Pick | None:
        return Pick()

    def drawn(self, token: int) -> bool:
        return True

    def wrote(self, token: int, left: int) -> Written:
        if token in self.tokenizer.stop_ids:
            return Written(self.stream.flush(), "stop")
        text, hit = self.stream.push(self.tokenizer.token_bytes(token))
        if hit:
            return Written(text, "stop")
        if left == 0:
            return Written(text + self.stream.flush(), "length")
        return Written(text)


@dataclass(frozen=True)
class _Segment:
    """A piece of a template: forced ``text``, or a free string / number the model writes."""

    kind: Literal["forced", "string", "digits"]
    text: str = ""  # forced: the text; free: ""
    call: int | None = None  # forced tool calls: the call it writes
    head: int = 0  # characters at its start that are not arguments (a call's head)
    tail: int = 0  # characters at its end that are not arguments (a call's tail)


def _forced(text: str, budget: BuildBudget) -> _Segment:
    """A forced segment writing ``text``, its bytes counted in ``budget``."""
    budget.spend(len(text))
    return _Segment("forced", text)


def _value_template(
    prop: Mapping[str, Any], head: str, depth: int, budget: BuildBudget
) -> list[_Segment]:
    """Segments writing ``head`` then a value for schema ``prop``: its first enum value, a free
    string, a free number, ``true``, an object (``_object_template``), ``[]`` or ``null``
    (also for a boolean schema, ``true`` / ``false``)."""
    prop = prop if isinstance(prop, Mapping) else {}
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if prop.get("enum"):
        return [_forced(head + json.dumps(prop["enum"][0]), budget)]
    if kind == "string":
        return [_forced(head + '"', budget), _Segment("string"), _forced('"', budget)]
    if kind in ("integer", "number"):
        return [_forced(head, budget), _Segment("digits")]
    if kind == "boolean":
        return [_forced(head + "true", budget)]
    if kind == "object" and depth < 4:
        return _object_template(prop, head, "", budget, depth + 1)
    if kind == "array":
        return [_forced(head + "[]", budget)]
    return [_forced(head + "null", budget)]


def _object_template(
    schema: Mapping[str, Any], prefix: str, suffix: str, budget: BuildBudget, depth: int = 0
) -> list[_Segment]:
    """``prefix{...}suffix``: the required properties of object ``schema`` in order (none
    for a boolean schema)."""
    schema = schema if isinstance(schema, Mapping) else {}
    props: Mapping[str, Any] = schema.get("properties") or {}
    segs = [_forced(prefix + "{", budget)]
    for i, key in enumerate(schema.get("required") or []):
        head = (", " if i else "") + json.dumps(key) + ": "
        segs += _value_template(props.get(key, {}), head, depth, budget)
    return [*segs, _forced("}" + suffix, budget)]


def calls_template(
    tools: Sequence[Mapping[str, Any]], budget: BuildBudget | None = None
) -> list[_Segment]:
    """The calls of ``tools`` one after another, each in the chat format's layout; their
    forced text counted in ``budget`` (None: a fresh ``chatcompat.request_rules.BuildBudget``)
    as it is built, which raises ``RuleViolation`` (400) past its limit."""
    budget = (budget or BuildBudget()).at("tools")
    segments: list[_Segment] = []
    for index, tool in enumerate(tools):
        function = tool["function"]
        head, tail = tool_call_frame(function["name"])
        segs = _object_template(function.get("parameters") or {}, head, tail, budget)
        segs[0], segs[-1] = replace(segs[0], head=len(head)), replace(segs[-1], tail=len(tail))
        segments += [replace(s, call=index) for s in segs]
    return segments


def format_template(
    response_format: Mapping[str, Any], budget: BuildBudget | None = None
) -> list[_Segment]:
    """json_schema with properties: that object (its forced text counted in ``budget``, as
    :func:`calls_template`); else ``{"text": "<free>"}``."""
    budget = (budget or BuildBudget()).at("response_format.json_schema.schema")
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    if response_format.get("type") == "json_schema" and schema.get("properties"):
        return _object_template(schema, "", "", budget)
    return [_Segment("forced", '{"text": "'), _Segment("string"), _Segment("forced", '"}')]


class _Masks:
    """The tokens a free segment may take (bool [V] each); stop tokens end a free string."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        v = tokenizer.vocab_size
        safe = torch.zeros(v, dtype=torch.bool)
        digit = torch.zeros(v, dtype=torch.bool)
        lead = torch.zeros(v, dtype=torch.bool)
        for i in range(tokenizer.n_base):
            b = tokenizer.token_bytes(i)
            safe[i] = all(0x20 <= c < 0x7F and c not in b'"\\' for c in b)
            digit[i] = b.isdigit()
            lead[i] = digit[i] and not b.startswith(b"0")
        stop = torch.zeros(v, dtype=torch.bool)
        stop[sorted(tokenizer.stop_ids)] = True
        self.string, self.digits, self.lead = safe | stop, digit | stop, lead

    def allowed(self, kind: str, written: int) -> Tensor:
        """The mask of a free ``kind`` segment that has ``written`` tokens so far."""
        if kind == "string":
            return self.string
        return self.digits if written else self.lead  # a number starts with 1-9


class Template:
    """Forced text and constrained free segments (JSON output, forced tool calls); finishes
    with ``finish`` once the last forced segment is written, ``length`` when cut first."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        segments: Sequence[_Segment],
        finish: FinishReason,
        names: Sequence[str] = (),
    ) -> None:
        self.tokenizer, self.segments, self.finish, self.names = tokenizer, segments, finish, names
        self.masks = _Masks(tokenizer)
        # forced token ids still to come: [segment] -> ids; free segments are []
        self.queue = [tokenizer.encode(s.text) if s.kind == "forced" else [] for s in segments]
        self.seg = 0  # the segment being written
        self.seg_len = 0  # tokens written in it
        self.seg_start = 0  # characters written before it
        self.stream = TextStream(())
        self.arguments = ["" for _ in names]  # the arguments of each call so far

    def _next_segment(self) -> None:
        self.seg, self.seg_len, self.seg_start = self.seg + 1, 0, self.stream.emitted

    def _free_done(self, kind: str, left: int) -> bool:
        if kind == "digits" and self.seg_len == 0:
            return False  # a number needs one digit (if the budget cannot hold it, it is cut)
        reserve = sum(map(len, self.queue[self.seg + 1 :]))  # the forced tokens still to come
        limit = _STRING_TOKENS if kind == "string" else _DIGIT_TOKENS
        return self.seg_len >= limit or left <= reserve

    def pick(self, left: int) -> Pick | None:
        while self.seg < len(self.segments):
            kind = self.segments[self.seg].kind
            if kind == "forced" and self.queue[self.seg]:
                return Pick(forced=self.queue[self.seg].pop(0))
            if kind != "forced" and not self._free_done(kind, left):
                return Pick(allowed=self.masks.allowed(kind, self.seg_len))
            self._next_segment()
        return None

    def drawn(self, token: int) -> bool:
        if token in self.tokenizer.stop_ids:
            self._next_segment()  # the model ended the free segment; the draw is discarded
            return False
        self.seg_len += 1
        return True

    def wrote(self, token: int, left: int) -> Written:
        before = self.stream.emitted - self.seg_start  # characters of the segment before it
        text, _ = self.stream.push(self.tokenizer.token_bytes(token))
        segment, last = self.segments[self.seg], self.seg == len(self.segments) - 1
        finish: FinishReason | None = None
        if last and segment.kind == "forced" and not self.queue[self.seg]:
            finish = self.finish
        elif left == 0:
            finish = "length"
        if segment.call is None:
            return Written(text, finish)
        # the arguments are the segment's characters [head, len - tail) (free ones: all)
        end = len(segment.text) - segment.tail if segment.kind == "forced" else before + len(text)
        arguments = text[max(segment.head - before, 0) : max(end - before, 0)]
        self.arguments[segment.call] += arguments
        piece = CallPiece(segment.call, self.names[segment.call], arguments)
        calls = zip(self.names, self.arguments, strict=True)
        whole = tuple(ToolCall(*c) for c in calls) if finish == "tool_calls" else ()
        return Written(text, finish, piece, whole)
