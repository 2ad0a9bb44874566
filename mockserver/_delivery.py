"""The last stage: timing and faults. An encoded answer goes out stamped with this request's id
and time, after the pauses the timing draws and broken as its fault says; a cassette goes out as
recorded, or its events broken the same way. What is written is a
:class:`~mockserver._faults.StreamPlan` (events, the pause before each, how the stream ends)
that the SSE writer runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from mockserver._cassettes import Cassette, replay
from mockserver._faults import Fault, StreamPlan, break_stream
from mockserver._plan import Plan
from mockserver._rendered import Rendered
from mockserver._sse import SSE_CONTENT_TYPE, write_stream
from mockserver._state import Call, MockState

__all__ = ["send", "send_cassette"]


async def send(state: MockState, call: Call, rendered: Rendered, plan: Plan) -> web.StreamResponse:
    """``rendered`` as this request's answer: stamped, paused as the timing draws when the
    plan is timed (a JSON answer waits as long as its stream would), a stream broken by the
    plan's fault, or sent in one write when it has neither."""
    completion_id, created = state.ids.completion_id(), int(time.time())
    stamp, timing, rng = state.answers.stamp, state.timing, state.timing_rng
    if not rendered.stream:
        if plan.timed:
            await asyncio.sleep(timing.answer_delay(rendered.completion_tokens, rng))
        body = stamp(rendered.body, completion_id, created)
        return web.Response(body=body, content_type=rendered.content_type)
    if plan.one_write:
        events = [stamp(rendered.body, completion_id, created)]
    else:
        events = [stamp(e, completion_id, created) for e in rendered.events]
    delays = timing.stream_delays(len(events), rng) if plan.timed else None
    stream = state.defects.apply("stream_plan", StreamPlan(events, delays))
    return await _write(call, stream, plan.fault, rendered.content_type)


async def send_cassette(
    state: MockState, call: Call, cassette: Cassette, body: Any
) -> web.StreamResponse:
    """``cassette`` as the answer to ``call`` (whose parsed body is ``body``), with the fault
    this request gets: a status fault instead of it (raised), a mid-stream fault on its events
    (when it is a 200 stream); else replayed byte for byte at the configured speed."""
    model = body.get("model") if isinstance(body, dict) else None
    fault = state.fault_for(call, model if isinstance(model, str) else None)
    if fault is None or not cassette.stream or cassette.status != 200:
        return await replay(call.request, cassette, speed=state.config.speed)
    events = [event + b"\n\n" for event in cassette.content.split(b"\n\n") if event]
    content_type = cassette.answer_headers.get("Content-Type", SSE_CONTENT_TYPE)
    return await _write(call, StreamPlan(events), fault, content_type.split(";")[0])


def _write(
    call: Call, plan: StreamPlan, fault: Fault | None, content_type: str
) -> Awaitable[web.StreamResponse]:
    """Run ``plan``, broken by ``fault`` first, as a 200 stream with the request's id."""
    if fault is not None:
        plan = break_stream(fault, plan)
    return write_stream(
        call.request,
        plan.events,
        content_type=content_type,
        headers={"x-request-id": call.id},
        delays=plan.delays,
        end=plan.end,
    )
