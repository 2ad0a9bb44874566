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
- ``errors``: ``error`` (status, envelope): tuple -> tuple; ``stream_error`` (how a stream
  request's error is sent: None as the JSON answer, "data" or "error-line" in a 200 stream):
  (how, status, envelope) -> the same; ``auth`` (whether the API key is checked),
  ``retrieve_unknown`` (whether GET /models/{id} serves an unlisted id): bool -> bool;
  ``fault`` (the fault injected into a valid request, or None): Fault | None -> Fault | None

Adding a defect: one ``Defect(name, doc, hooks)`` in its stage module's ``DEFECTS``, and its row
in tests/conformance/kill_matrix.toml.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mockserver._defects import answer, errors, request, stream
from mockserver._defects.defect import STAGES, Defect, Hook

__all__ = ["DEFECTS", "STAGES", "ActiveDefects", "Defect"]


def _registry(*tables: tuple[Defect, ...]) -> dict[str, Defect]:
    """name -> defect over ``tables``; raises ValueError when a name is given twice."""
    registry: dict[str, Defect] = {}
    for defect in (d for table in tables for d in table):
        if defect.name in registry:
            raise ValueError(f"defect {defect.name!r} defined twice")
        registry[defect.name] = defect
    return registry


DEFECTS = _registry(request.DEFECTS, answer.DEFECTS, stream.DEFECTS, errors.DEFECTS)


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
