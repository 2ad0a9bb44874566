"""Defect modes: each breaks one behaviour of the mock, so that a conformance check can be shown
to fail. Which checks catch which defect is the suite's knowledge, not the mock's: the table is
tests/conformance/kill_matrix.toml.

A defect is data: its name, a one-line doc and the hooks it installs at named stages of the
answer pipeline. Handlers call :meth:`ActiveDefects.apply` at each stage. The defects live in
one module per group of stages (a defect with hooks at several stages, in the module of its
first):

- ``request``: ``request_raw`` (parsed body, before validation) and ``request`` (validated body,
  before the answer is made): dict -> dict
- ``answer``: ``completion`` (a non-stream answer) and ``models`` (the GET /models listing):
  dict -> dict
- ``stream``: ``chunks`` (the stream's chunk objects): list[dict] -> list[dict]; ``events`` (the
  stream's SSE event bytes, [DONE] last): list[bytes] -> list[bytes]; ``stream_content_type``:
  str -> str
- ``quirks``: real-world quirks at any stage, each with the public report it comes from
- ``framing``: valid SSE framings OpenAI never sends (``events``), and ``stream_plan`` (what
  the SSE writer sends: events and the pause before each, after the timing is drawn):
  StreamPlan -> StreamPlan
- ``errors``: ``error`` (status, envelope): tuple -> tuple; ``stream_error`` (how a stream
  request's error is sent: None as the JSON answer, "data" or "error-line" in a 200 stream):
  (how, status, envelope) -> the same; ``auth`` (whether the API key is checked),
  ``retrieve_unknown`` (whether GET /models/{id} serves an unlisted id): bool -> bool;
  ``fault`` (the fault injected into a valid request, or None): Fault | None -> Fault | None
- ``values``: well-typed but wrong values (created, indices, usage of n choices, logprobs with
  sampling parameters), whose hooks span the request, completion and chunks stages

Two modules hold the defects of one class of text whatever their stages: ``text`` (non-ASCII
text broken in streams or counted wrong) and ``reasoning`` (the answer moved out of content).

Adding a defect: one ``Defect(name, doc, hooks)`` in its stage module's ``DEFECTS``, and its row
in tests/conformance/kill_matrix.toml; ``report=URL`` (the public report of a real server doing
it) puts it in the catalogue of quirks (:data:`QUIRKS`, the README's table of quirks).

A server applies its configured defects to every request (:class:`ActiveDefects`); a request
gets more through the fault header's ``defect=NAME`` items and a test through
``chat_mock.defect(NAME)`` (:class:`RequestDefects`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mockserver._defects import (
    answer,
    errors,
    framing,
    quirks,
    reasoning,
    request,
    stream,
    text,
    values,
)
from mockserver._defects.defect import STAGES, Defect, Hook

__all__ = ["DEFECTS", "QUIRKS", "STAGES", "ActiveDefects", "Defect", "RequestDefects", "known"]


def _registry(*tables: tuple[Defect, ...]) -> dict[str, Defect]:
    """name -> defect over ``tables``; raises ValueError when a name is given twice."""
    registry: dict[str, Defect] = {}
    for defect in (d for table in tables for d in table):
        if defect.name in registry:
            raise ValueError(f"defect {defect.name!r} defined twice")
        registry[defect.name] = defect
    return registry


DEFECTS = _registry(
    request.DEFECTS,
    answer.DEFECTS,
    stream.DEFECTS,
    framing.DEFECTS,
    errors.DEFECTS,
    quirks.DEFECTS,
    text.DEFECTS,
    reasoning.DEFECTS,
    values.DEFECTS,
)
# The catalogue of real-world quirks: every defect with the public report it comes from
QUIRKS = {name: defect for name, defect in DEFECTS.items() if defect.report}


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


class RequestDefects:
    """The defects each request gets: the server's (configured), those a test scripted
    (:meth:`add`) and those its fault header names. Each combination is bound once and kept
    until :meth:`clear` (at most ``capacity`` of them), so a stateful defect asked for per
    request or per test keeps its state across the requests that ask for it. Scripted names
    are replaced whole, so another thread may add them safely."""

    def __init__(self, configured: Iterable[str] = (), capacity: int = 64) -> None:
        self.server = ActiveDefects(configured)
        self.scripted: tuple[str, ...] = ()
        self._capacity = capacity
        self._bound: dict[tuple[str, ...], ActiveDefects] = {}

    def add(self, name: str) -> Defect:
        """Apply the defect ``name`` to every following request (a ValueError if unknown)."""
        defect = known(name)
        if name not in self.scripted:
            self.scripted = (*self.scripted, name)
        return defect

    def clear(self) -> None:
        """Drop the scripted defects and the state of every combination bound."""
        self.scripted = ()
        self._bound = {}

    def of(self, named: tuple[str, ...] = ()) -> ActiveDefects:
        """The defects of a request whose fault header names ``named`` (known names)."""
        if not named and not self.scripted:
            return self.server  # the common case: the server's own
        names = tuple(dict.fromkeys((*self.server.names, *self.scripted, *named)))
        bound = self._bound.get(names)
        if bound is None:
            bound = ActiveDefects(names)
            kept = list(self._bound.items())[-(self._capacity - 1) :] if self._capacity > 1 else []
            self._bound = {**dict(kept), names: bound}  # the oldest dropped past the capacity
        return bound


def known(name: str) -> Defect:
    """The defect ``name``; a ValueError naming the known ones when there is none."""
    defect = DEFECTS.get(name)
    if defect is None:
        raise ValueError(f"unknown defect {name!r}; known: {', '.join(sorted(DEFECTS))}")
    return defect
