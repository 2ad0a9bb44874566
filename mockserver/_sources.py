"""The source stage: what answers a chat completion request, and the neutral answer it gives.

The sources, in the order they are asked: a cassette (in replay mode; its recorded bytes go out
as they are, past shape, defects and encode); an answer kept in the answer cache (already
encoded); then, for a valid request, the reference model when the server generates (``live``:
its tokens handed on as they are made, for a plain one-choice stream; else ``model``: the whole
answer) or a template made from the seed examples (``template``). With ``on_miss=error`` a
replay miss is a 404 instead of an answer.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Literal

from aiohttp import web

from mockserver._answer import Answer
from mockserver._cassettes import Cassette
from mockserver._errors import ApiError, client_left
from mockserver._faults import Fault
from mockserver._generate import LiveAnswer
from mockserver._state import Call, MockState
from mockserver._template import template_answer

__all__ = ["Source", "choose_source", "find_cassette", "live_answer", "whole_answer"]

# What answers a valid request: the answer cache, a template, the reference model (whole or
# live), a test's scripted reply
Source = Literal["cached", "template", "model", "live", "scripted"]


def find_cassette(
    state: MockState, call: Call, *, kept: bool = False
) -> tuple[Cassette, Any] | None:
    """The cassette that answers ``call`` and its parsed body, in replay mode: those loaded at
    run time first, then the configured ones, except for a body with a ``kept`` answer, which
    missed the configured ones before (they never change)."""
    if not state.replaying or (kept and not state.scripted_cassettes.stores):
        return None
    method, path = call.request.method, call.request.path[len(state.config.prefix) :]
    found = state.scripted_cassettes.match(method, path, call.raw)
    if found is None and not kept:
        found = state.cassettes.match(method, path, call.raw)
    return found


def choose_source(
    state: MockState,
    request: web.Request,
    body: dict[str, Any],
    fault: Fault | None,
    *,
    defects: bool = False,
) -> Source:
    """The source of the answer to the valid ``body``: the reference model when the server
    generates, ``live`` for a stream it can make live that nothing else changes (no fault,
    ``defects`` or timing); else a template. A replay miss with ``on_miss=error`` raises its
    404."""
    if state.replaying and state.config.on_miss == "error":
        raise _cassette_miss(request, body)
    model = state.model
    if model is None:
        return "template"
    plain = fault is None and not defects and not state.timed
    return "live" if plain and model.streams_live(body) else "model"


def _cassette_miss(request: web.Request, body: dict[str, Any]) -> ApiError:
    """The 404 of a replay miss with on_miss=error, saying how to record a cassette."""
    return ApiError(
        404,
        f"No cassette matches {request.method} {request.path} "
        f"(model {body.get('model')!r}). Record one with `chatcompat record --upstream URL "
        "--cassettes DIR`, then replay it with `chatcompat mock --cassettes DIR`.",
        code="cassette_not_found",
    )


async def whole_answer(
    state: MockState, source: Source, body: dict[str, Any], call: Call
) -> Answer:
    """The whole answer of ``source`` (``template`` or ``model``) to ``body``, made with the
    answer cache's sentinel id and ``created``, which the last stage stamps. The model stops
    (ConnectionResetError) when ``call``'s client leaves first."""
    completion_id, created = state.answers.completion_id, state.answers.created
    if source == "model":
        assert state.model is not None
        left = partial(client_left, call.request)
        return await state.model.answer(
            body, completion_id=completion_id, created=created, client_left=left
        )
    return template_answer(
        body,
        completion_id=completion_id,
        created=created,
        # the context is one of the strict level's rules
        context_length=state.config.context_length if state.validation == "strict" else None,
    )


async def live_answer(state: MockState, body: dict[str, Any]) -> LiveAnswer:
    """The reference model's answer to ``body`` while it makes it (returns once the first
    token is out), with this request's id and time."""
    assert state.model is not None
    completion_id, created = state.ids.completion_id(), int(time.time())
    return await state.model.live(body, completion_id=completion_id, created=created)
