"""The state of one mock server, built once from its config and shared by its handlers
(:class:`MockState`), and one request on its way through a route (:class:`Call`)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from mockserver._cassettes import CassetteStore, ScriptedCassettes
from mockserver._config import MockConfig
from mockserver._defects import ActiveDefects, RequestDefects, known
from mockserver._errors import ApiError
from mockserver._faults import (
    FAULT_HEADER,
    FAULT_KEY_HEADER,
    FailCounter,
    Fault,
    ScriptedFaults,
    select_fault,
    split_defects,
    status_error,
)
from mockserver._flavours import FLAVOURS
from mockserver._generate import ModelWorker
from mockserver._rendered import AnswerCache
from mockserver._replies import ScriptedReplies
from mockserver._request_log import RequestLog
from mockserver._upstream import Recorder

__all__ = ["Call", "Ids", "MockState"]


class Ids:
    """Ids shaped like OpenAI's (32 random-looking hex digits), from a generator the OS seeds:
    as unique as ``os.urandom`` per request, at a quarter of the cost."""

    def __init__(self) -> None:
        self._bits = random.Random(os.urandom(32)).getrandbits

    def request_id(self) -> str:
        """An ``x-request-id``: ``req_`` and 32 hex digits."""
        return "req_" + self._bits(128).to_bytes(16, "big").hex()

    def completion_id(self) -> str:
        """A completion's ``id``: ``chatcmpl-`` and 32 hex digits."""
        return "chatcmpl-" + self._bits(128).to_bytes(16, "big").hex()


@dataclass(slots=True)
class Call:
    """One request on its way through a route: what the answer needs besides the request."""

    request: web.Request
    id: str  # its x-request-id
    defects: ActiveDefects  # the server's, the test's and its fault header's (read_fault_header)
    fault_spec: str | None = None  # its fault header without the defect= items
    raw: bytes = b""  # the body (read for the API routes)
    stream_asked: bool = False  # the body asked for a stream (its error may be a stream event)


class MockState:
    """What one server holds: its config and what the config builds (active defects, the
    cassettes, the reference model, the answer cache, the id and timing generators), what
    tests script while it runs (faults, cassettes, fail-first counts, replies) and the log of
    the requests it received."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.flavour = FLAVOURS[config.flavour]
        self.request_defects = RequestDefects(config.defects)  # + scripted, + per request
        self.defects = self.request_defects.server  # the configured ones, bound to this server
        # with a record mode: the cassettes of its folder only (created first when missing)
        self.recorder = Recorder(config) if config.record_mode is not None else None
        recorder = self.recorder
        folders = config.cassettes if recorder is None else recorder.folders
        self.cassettes = CassetteStore.from_directories(
            folders,
            builtin=config.builtin_cassettes and recorder is None,
            loose=config.match == "loose",
        )
        self.scripted_cassettes = ScriptedCassettes()  # loaded at run time
        self.replaying = config.mode == "replay"
        self.model: ModelWorker | None = None
        if config.generates:
            sampling = config.sampling or self.flavour.sampling
            self.model = ModelWorker(sampling, context_length=config.context_length)
        self.answers = AnswerCache()  # rendered template answers by raw body
        self.validation = config.validation  # the level in force (a test may change it)
        self.ids = Ids()
        self.timing = config.timing
        self.timed = config.timing.enabled  # any pause can be non-zero
        self.timing_rng = random.Random(config.timing_seed)  # draws of the timing pauses
        self.fail_counter = FailCounter()  # fail-first attempts per key
        self.scripted_faults = ScriptedFaults()  # rules added at run time
        self.may_fault = bool(config.fault_rules or config.defects)  # without a header
        self.replies = ScriptedReplies()  # queued by tests for the next chat completions
        self.requests = RequestLog()  # with control on: every request but the control routes'

    def set_validation(self, level: str) -> None:
        """Validate the following requests at ``level`` (strict, schema, off); the answers
        kept for bodies validated at another level are forgotten. A ValueError for an unknown
        level."""
        if level not in ("strict", "schema", "off"):
            raise ValueError(f"unknown validation level {level!r}; known: strict, schema, off")
        if level != self.validation:
            self.validation = level
            self.answers = AnswerCache()

    def read_fault_header(self, call: Call) -> None:
        """Set ``call``'s defects (the server's, the scripted ones and those its fault header
        names) and its fault spec (the header's other items); an ApiError 400 for a header
        naming an unknown defect."""
        header = call.request.headers.get(FAULT_HEADER)
        named: tuple[str, ...] = ()
        if header is not None:
            try:
                named, call.fault_spec = split_defects(header)
                for name in named:
                    known(name)
            except ValueError as exc:
                raise ApiError(400, f"Invalid {FAULT_HEADER} header: {exc}.") from None
        call.defects = self.request_defects.of(named)

    def fault_for(self, call: Call, model: str | None) -> Fault | None:
        """The fault injected into this valid request (for ``model``, None where the route
        has none): a status fault is raised as its error, a mid-stream fault returned."""
        request, defects = call.request, call.defects
        scripted, header = self.scripted_faults.rules, call.fault_spec
        if not (self.may_fault or scripted or header is not None or defects is not self.defects):
            return None  # the common case: nothing can inject a fault
        fault = select_fault(
            header,
            request.headers.get(FAULT_KEY_HEADER),
            scripted + self.config.fault_rules,
            self.fail_counter,
            path=request.path,
            prefix=self.config.prefix,
            model=model,
        )
        fault = cast("Fault | None", defects.apply("fault", fault))
        if fault is not None and not fault.mid_stream:
            raise status_error(fault)
        return fault
