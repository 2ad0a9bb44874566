"""The plan of one chat completion request: the decisions the pipeline acts on, each made once,
by name, when the request is known to be valid: which source answers it (the answer cache, a
template, the reference model whole or live), which fault it gets, whether timing pauses apply;
and what follows from them (the answer is kept for the next request with the same body; a
stream goes out in one write)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from chatcompat.request_rules import integral
from mockserver._faults import Fault
from mockserver._rendered import Rendered
from mockserver._sources import Source, choose_source
from mockserver._state import Call, MockState
from mockserver._validation import parse_body, validate_request

__all__ = ["Plan", "plan_answer", "valid_body"]


@dataclass(frozen=True, slots=True)
class Plan:
    """How a valid chat completion request is answered."""

    source: Source
    fault: Fault | None = None  # its mid-stream fault (a status fault was raised instead)
    timed: bool = False  # pauses (TTFT / ITL draws) before the answer's writes

    @property
    def split_utf8(self) -> bool:
        """Whether the fault splits a multi-byte character (the answer must carry one)."""
        return self.fault is not None and self.fault.split_utf8

    @property
    def keep(self) -> bool:
        """Whether the answer made goes into the answer cache: a template answer depends on the
        body alone, unless it was given a multi-byte text for split-utf8."""
        return self.source == "template" and not self.split_utf8

    @property
    def one_write(self) -> bool:
        """Whether a stream goes out in one write: no pauses and no fault to break it."""
        return self.fault is None and not self.timed


# the plans of a kept answer without a fault, untimed and timed: made once, not per request
_KEPT = {timed: Plan("cached", None, timed) for timed in (False, True)}


def plan_answer(
    state: MockState, call: Call, kept: Rendered | None
) -> tuple[Plan, dict[str, Any] | None]:
    """The plan for ``call`` and its valid body; the body is None when the answer ``kept`` for
    the same bytes serves (validated then). A kept answer lacks only what split-utf8 adds, so
    with that fault the body is validated and its answer made again."""
    if kept is not None:
        call.stream_asked = kept.stream
        fault = state.fault_for(call, kept.model)
        if fault is None:
            return _KEPT[state.timed], None
        if not fault.split_utf8:
            return Plan("cached", fault, state.timed), None
        body = valid_body(state, call)
    else:
        body = valid_body(state, call)
        fault = state.fault_for(call, body["model"])
    source = choose_source(state, call.request, body, fault, defects=bool(call.defects))
    return Plan(source, fault, state.timed), body


def valid_body(state: MockState, call: Call) -> dict[str, Any]:
    """The parsed request body as the answer sources answer it (at the server's validation
    level: ``_validation.validate_request``), after the call's request defects
    (``request_raw`` before validation, ``request`` after it); an ApiError 400 when it is not
    a valid request."""
    body = parse_body(call.raw)
    call.stream_asked = body.get("stream") is True
    body = call.defects.apply("request_raw", body)
    body = validate_request(body, state.config, state.validation)
    return cast("dict[str, Any]", call.defects.apply("request", integral(body)))
