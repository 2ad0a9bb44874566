"""Fault injection: error statuses, fail-first-N and mid-stream breakage, opt-in only.

A fault is a spec string, ``;``-separated ``name=value`` items and flags (see
:func:`parse_fault`), given as a config rule (``MockConfig.faults``, ``chatcompat mock --fault``),
optionally scoped with ``model=`` / ``path=``, or per request in the ``X-Chatcompat-Fault``
header (which wins over the rules). The header may also name mock defects for its request
(``defect=NAME``, see :func:`split_defects`). Status faults apply only to requests that are
otherwise valid, so a bad request still gets its 4xx; mid-stream faults apply to streams only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from http import HTTPStatus
from typing import NamedTuple

from mockserver._answer import Answer, Choice, Token
from mockserver._errors import ApiError
from mockserver._lru import LRU

__all__ = [
    "FAULT_HEADER",
    "FAULT_KEY_HEADER",
    "FailCounter",
    "Fault",
    "ScriptedFaults",
    "StreamPlan",
    "break_stream",
    "parse_fault",
    "select_fault",
    "split_defects",
    "status_error",
    "with_multibyte",
]

FAULT_HEADER = "X-Chatcompat-Fault"
FAULT_KEY_HEADER = "X-Chatcompat-Fault-Key"
MULTIBYTE_TEXT = "Café 你好! "  # prefixed to the answer when split-utf8 finds no multi-byte char
SPLIT_PAUSE = 0.05  # seconds between the two halves of a split character, so they arrive apart
MALFORMED_EVENT = b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n'
MAX_STALL = 3600.0


@dataclass(frozen=True)
class Fault:
    """One parsed fault spec; ``None`` fields are not asked for."""

    spec: str
    status: int | None = None  # answer this status (in the envelope) instead of the answer
    retry_after: int | None = None  # Retry-After header, seconds
    retry_after_ms: int | None = None  # retry-after-ms header
    fail_first: int | None = None  # only the first N attempts with the same key get the fault
    key: str | None = None  # fail-first counter key (else X-Chatcompat-Fault-Key, else the spec)
    disconnect_after: int | None = None  # close the connection after k events
    reset_after: int | None = None  # TCP RST after k events
    stall_after: int | None = None  # stop writing for ``stall`` seconds after k events
    stall: float = 5.0
    malformed_after: int | None = None  # a non-JSON data event after k events
    error_after: int | None = None  # a data: {"error": ...} event and [DONE] after k events
    split_utf8: bool = False  # a multi-byte character split across two writes
    no_done: bool = False  # no data: [DONE] at the end
    model: str | None = None  # scope: only requests for this model
    path: str | None = None  # scope: only this path (with or without the API prefix)

    @property
    def mid_stream(self) -> bool:
        """Whether the fault breaks a stream (rather than answering an error status)."""
        return (
            self.split_utf8
            or self.no_done
            or any(getattr(self, name) is not None for name in _STREAM_COUNTS)
        )

    def applies_to(self, path: str, prefix: str, model: str | None) -> bool:
        """Whether the scope (model=, path=) of this fault covers a request."""
        if self.model is not None and self.model != model:
            return False
        return self.path is None or path in (self.path, prefix + self.path)


_STREAM_COUNTS = (
    "disconnect_after",
    "reset_after",
    "stall_after",
    "malformed_after",
    "error_after",
)
_FLAGS = ("split_utf8", "no_done")
_NAMES = {f.name.replace("_", "-"): f.name for f in fields(Fault) if f.name != "spec"}


def _number(name: str, text: str, *, low: float, high: float, integer: bool) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name}={text!r}: expected {kind}") from None
    if not (low <= value <= high) or not math.isfinite(value):
        raise ValueError(f"{name}={text!r}: expected a value in [{low:g}, {high:g}]")
    return value


def split_defects(spec: str) -> tuple[tuple[str, ...], str | None]:
    """The defect names that the ``defect=NAME`` items of a fault header ask for (NAME may list
    several, comma-separated; the item may repeat) and the rest of the spec, None when nothing
    else is left. The names are not checked here; a ``defect`` item without one is a
    ValueError."""
    names: list[str] = []
    rest: list[str] = []
    for item in spec.split(";"):
        name, eq, text = (s.strip() for s in item.partition("="))
        if name != "defect":
            rest += [item] if item.strip() else []
            continue
        found = [n.strip() for n in text.split(",") if n.strip()]
        if not eq or not found:
            raise ValueError("defect needs a value (defect=NAME)")
        names += found
    return tuple(names), ";".join(rest) if rest else None


def parse_fault(spec: str) -> Fault:
    """The fault that ``spec`` (e.g. ``status=429;retry-after-ms=1500``) asks for, or a
    ValueError naming the bad item."""
    values: dict[str, object] = {}
    for item in (part.strip() for part in spec.split(";")):
        if not item:
            continue
        name, eq, text = (s.strip() for s in item.partition("="))
        attr = _NAMES.get(name)
        if attr is None:
            raise ValueError(f"unknown fault item {name!r}; known: {', '.join(sorted(_NAMES))}")
        if attr in values:
            raise ValueError(f"{name} is given twice")
        if attr in _FLAGS:
            if eq:
                raise ValueError(f"{name} is a flag and takes no value")
            values[attr] = True
            continue
        if not eq or not text:
            raise ValueError(f"{name} needs a value ({name}=...)")
        if attr in ("key", "model", "path"):
            values[attr] = text
        elif attr == "status":
            values[attr] = int(_number(name, text, low=400, high=599, integer=True))
        elif attr == "stall":
            values[attr] = _number(name, text, low=0.0, high=MAX_STALL, integer=False)
        elif attr == "fail_first":
            values[attr] = int(_number(name, text, low=1, high=10**6, integer=True))
        else:  # retry-after, retry-after-ms and the event counts
            values[attr] = int(_number(name, text, low=0, high=10**9, integer=True))
    if not values:
        raise ValueError("empty fault spec")
    fault = Fault(spec=spec.strip(), **values)  # type: ignore[arg-type]
    if fault.status is not None and fault.mid_stream:
        raise ValueError("status= cannot be combined with mid-stream faults")
    if fault.stall_after is None and "stall" in values:
        raise ValueError("stall= needs stall-after=")
    if not fault.mid_stream and fault.status is None:
        retry = fault.retry_after is not None or fault.retry_after_ms is not None
        if not retry and fault.fail_first is None:
            raise ValueError("nothing to inject: give status=, a mid-stream fault or fail-first=")
        fault = replace(fault, status=429 if retry else 503)
    return fault


class FailCounter:
    """Attempts seen per fail-first key, for at most ``capacity`` keys (least recent dropped)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._counts: LRU[str, int] = LRU(capacity)

    def attempt(self, key: str) -> int:
        """Count one more attempt for ``key``; its number, 1 for the first."""
        count = (self._counts.get(key) or 0) + 1
        self._counts.put(key, count)
        return count

    def clear(self) -> None:
        """Forget every attempt (each key starts again from its first)."""
        self._counts.clear()


class ScriptedFaults:
    """Fault rules added while the server runs (the pytest plugin's ``chat_mock.fault``), read
    ahead of the configured ones; replaced whole, so another thread may add them safely."""

    def __init__(self) -> None:
        self.rules: tuple[Fault, ...] = ()

    def add(self, spec: str) -> Fault:
        """Parse ``spec`` (a ValueError if it is bad) and apply it to the following requests."""
        fault = parse_fault(spec)
        self.rules = (*self.rules, fault)
        return fault

    def clear(self) -> None:
        """Drop every scripted rule."""
        self.rules = ()


def select_fault(
    header: str | None,
    key_header: str | None,
    rules: tuple[Fault, ...],
    counter: FailCounter,
    *,
    path: str,
    prefix: str,
    model: str | None,
) -> Fault | None:
    """The fault this request gets: the header's, else the first rule in scope; ``None`` once
    a fail-first fault has failed its N attempts for the key (or when none applies)."""
    if header is not None:
        try:
            fault: Fault | None = parse_fault(header)
        except ValueError as exc:
            raise ApiError(400, f"Invalid {FAULT_HEADER} header: {exc}.") from None
    else:
        fault = next((r for r in rules if r.applies_to(path, prefix, model)), None)
    if fault is None or not fault.applies_to(path, prefix, model):
        return None
    if fault.fail_first is not None:
        key = fault.key or key_header or fault.spec
        if counter.attempt(f"{fault.spec}\x00{key}") > fault.fail_first:
            return None
    return fault


def status_error(fault: Fault) -> ApiError:
    """The error answer of a status fault: the envelope, plus Retry-After / retry-after-ms
    (always on a 429, 1 s unless given)."""
    assert fault.status is not None
    headers: dict[str, str] = {}
    retry_ms = fault.retry_after_ms
    if retry_ms is None and fault.retry_after is not None:
        retry_ms = fault.retry_after * 1000
    if retry_ms is None and fault.status == 429:
        retry_ms = 1000
    if retry_ms is not None:
        headers["retry-after-ms"] = str(retry_ms)
        retry_s = fault.retry_after if fault.retry_after is not None else math.ceil(retry_ms / 1000)
        headers["Retry-After"] = str(retry_s)
    if fault.status == 429:
        return ApiError(
            429,
            "Rate limit reached for requests (injected fault).",
            code="rate_limit_exceeded",
            headers=headers,
        )
    try:
        phrase = HTTPStatus(fault.status).phrase
    except ValueError:
        phrase = "Error"
    return ApiError(
        fault.status,
        f"{phrase} (injected fault: {fault.spec}).",
        code="injected_fault",
        headers=headers,
    )


def with_multibyte(answer: Answer) -> Answer:
    """``answer`` with :data:`MULTIBYTE_TEXT` before its first text when no token has a
    multi-byte character, so that split-utf8 has one to split."""
    if any(not t.text.isascii() for c in answer.choices for t in c.tokens):
        return answer

    def prefixed(choice: Choice) -> Choice:
        tokens = list(choice.tokens)
        at = next((i for i, t in enumerate(tokens) if t.text), None)
        if at is None:
            tokens.insert(0, Token(MULTIBYTE_TEXT))
        else:
            tokens[at] = replace(tokens[at], text=MULTIBYTE_TEXT + tokens[at].text)
        return replace(choice, tokens=tuple(tokens))

    return replace(answer, choices=tuple(map(prefixed, answer.choices)))


ERROR_EVENT = (
    b'data: {"error": {"message": "The server had an error while processing your request '
    b'(injected fault: error-after).", "type": "server_error", "param": null, '
    b'"code": "injected_fault"}}\n\n'
)


class StreamPlan(NamedTuple):
    """What the SSE writer sends: events, the pause before each (None: no pauses, one write)
    and how the stream ends: "eof" (complete), "close" (FIN mid-body) or "reset" (TCP RST).
    A named tuple: one is made per stream answered, and a tuple is made fastest."""

    events: list[bytes]
    delays: list[float] | None = None
    end: str = "eof"


def _split_multibyte(event: bytes) -> tuple[bytes, bytes] | None:
    at = next((i for i, b in enumerate(event) if b >= 0xC0), None)
    return None if at is None else (event[: at + 1], event[at + 1 :])


def break_stream(fault: Fault, plan: StreamPlan) -> StreamPlan:
    """``plan`` with the mid-stream parts of ``fault`` applied (k counts events from the
    first, ``data: [DONE]`` included)."""
    events = list(plan.events)
    delays = list(plan.delays) if plan.delays is not None else [0.0] * len(events)
    per_event = plan.delays is not None
    end = plan.end
    if fault.no_done and events and events[-1] == b"data: [DONE]\n\n":
        del events[-1], delays[-1]
    if fault.malformed_after is not None:
        k = min(fault.malformed_after, len(events))
        events.insert(k, MALFORMED_EVENT)
        delays.insert(k, 0.0)
    if fault.error_after is not None:
        k = min(fault.error_after, len(events))
        events[k:] = [ERROR_EVENT, b"data: [DONE]\n\n"]
        delays[k:] = [delays[k] if k < len(delays) else 0.0, 0.0]
    if fault.split_utf8:
        at = next((i for i, e in enumerate(events) if _split_multibyte(e)), None)
        halves = _split_multibyte(events[at]) if at is not None else None
        if at is not None and halves is not None:
            events[at : at + 1] = halves
            delays[at : at + 1] = [delays[at], SPLIT_PAUSE]
            per_event = True
    if fault.stall_after is not None:
        k = fault.stall_after
        if k < len(delays):
            delays[k] += fault.stall
        per_event = True
    for count, how in ((fault.disconnect_after, "close"), (fault.reset_after, "reset")):
        if count is not None:
            del events[count:], delays[count:]
            end = how
            break
    return StreamPlan(events, delays if per_event else None, end)
