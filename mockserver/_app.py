"""The aiohttp application: one route table, typed handlers, state in AppKeys."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any, cast

from aiohttp import web

from mockserver import _defects, _faults
from mockserver._cassettes import (
    Cassette,
    CassetteStore,
    ScriptedCassettes,
    parse_request_body,
    replay,
)
from mockserver._config import MockConfig
from mockserver._dialects import DIALECTS, completion_body, stream_chunks
from mockserver._errors import ApiError, Handler, error_body, error_middleware
from mockserver._faults import (
    FAULT_HEADER,
    FAULT_KEY_HEADER,
    FailCounter,
    Fault,
    ScriptedFaults,
    StreamPlan,
)
from mockserver._generate import ModelWorker, require_reference_model
from mockserver._openapi import openapi_document
from mockserver._rendered import AnswerCache, BodySet, Rendered
from mockserver._sse import DONE, encode_chunk, write_stream
from mockserver._template import template_answer
from mockserver._validation import integral, parse_body, validate_request

__all__ = [
    "CASSETTES",
    "CONFIG",
    "FAIL_COUNTER",
    "SCRIPTED_CASSETTES",
    "SCRIPTED_FAULTS",
    "create_app",
]

CONFIG = web.AppKey("config", MockConfig)
REQUEST_ID = web.RequestKey("request_id", str)
STREAM_ASKED = web.RequestKey("stream_asked", bool)  # the body asked for a stream
CASSETTES = web.AppKey("cassettes", CassetteStore)
MODEL = web.AppKey("model", ModelWorker)
FAIL_COUNTER = web.AppKey("fail_counter", FailCounter)  # fail-first attempts per key
SCRIPTED_FAULTS = web.AppKey("scripted_faults", ScriptedFaults)  # rules added at run time
SCRIPTED_CASSETTES = web.AppKey("scripted_cassettes", ScriptedCassettes)  # loaded at run time
TIMING_RNG = web.AppKey("timing_rng", random.Random)  # draws of the timing pauses
ANSWER_CACHE = web.AppKey("answer_cache", AnswerCache)  # rendered template answers by body
CASSETTE_MISSES = web.AppKey("cassette_misses", BodySet)  # requests no cassette matches


def _config(request: web.Request) -> MockConfig:
    return request.app[CONFIG]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json"
    )


def _render_error(request: web.Request, error: ApiError) -> web.Response:
    """The error envelope, after the active defects have had their say."""
    status, body = _defects.apply(
        request.app[CONFIG].defects, "error", (error.status, error_body(error))
    )
    if request.get(STREAM_ASKED) and _defects.apply(
        request.app[CONFIG].defects, "stream_error", False
    ):  # the error as an event of a 200 stream
        event = b"data: " + json.dumps(body).encode() + b"\n\n"
        return web.Response(body=event + DONE, content_type="text/event-stream")
    response = _json(body, status)
    response.headers.update(error.headers)
    return response


@web.middleware
async def _request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every answer an ``x-request-id`` (set before streams start)."""
    request[REQUEST_ID] = f"req_{os.urandom(16).hex()}"  # as unique as uuid4().hex, 4x faster
    response = await handler(request)
    if not response.prepared:
        response.headers["x-request-id"] = request[REQUEST_ID]
    return response


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With an API key configured, every API route wants ``Authorization: Bearer <key>``."""
    config = _config(request)
    if config.api_key is None or not request.path.startswith(config.prefix + "/"):
        return await handler(request)
    if not _defects.apply(config.defects, "auth", True):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if not header:
        raise ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="invalid_api_key",
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or token.strip() != config.api_key:
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
    return await handler(request)


def _request_fault(request: web.Request, model: str | None) -> Fault | None:
    """The fault injected into this valid request: a status fault is raised as its error, a
    mid-stream fault returned."""
    config = _config(request)
    fault = _faults.select_fault(
        request.headers.get(FAULT_HEADER),
        request.headers.get(FAULT_KEY_HEADER),
        (*request.app[SCRIPTED_FAULTS].rules, *config.fault_rules),
        request.app[FAIL_COUNTER],
        path=request.path,
        prefix=config.prefix,
        model=model,
    )
    fault = cast("Fault | None", _defects.apply(config.defects, "fault", fault))
    if fault is not None and not fault.mid_stream:
        raise _faults.status_error(fault)
    return fault


@web.middleware
async def _cassette(request: web.Request, handler: Handler) -> web.StreamResponse:
    """In replay mode, a request under the prefix that matches a cassette gets its answer."""
    config = _config(request)
    if config.mode != "replay" or not request.path.startswith(config.prefix + "/"):
        return await handler(request)
    raw = await request.read()
    path = request.path[len(config.prefix) :]
    scripted = request.app[SCRIPTED_CASSETTES].find(request.method, path, raw)
    if scripted is not None:  # loaded at run time (the pytest plugin): looked up first
        return await _replay(request, scripted, parse_request_body(raw))
    key, misses = (request.method, path, raw), request.app[CASSETTE_MISSES]
    if key in misses:  # the store never changes: no need to parse and look again
        return await handler(request)
    body = parse_request_body(raw)
    found = request.app[CASSETTES].find(request.method, path, body)
    if found is None:
        misses.add(key)
        return await handler(request)
    return await _replay(request, found, body)


async def _replay(request: web.Request, cassette: Cassette, body: Any) -> web.StreamResponse:
    """Replay ``cassette`` with the fault this request gets: a status fault instead of it, a
    mid-stream fault on its events (when it is a 200 stream)."""
    config = _config(request)
    model = body.get("model") if isinstance(body, dict) else None
    fault = _request_fault(request, model if isinstance(model, str) else None)
    headers = {"x-request-id": request[REQUEST_ID]}
    if fault is None or not cassette.stream or cassette.status != 200:
        return await replay(request, cassette, speed=config.speed, headers=headers)
    events = [event + b"\n\n" for event in cassette.content.split(b"\n\n") if event]
    plan = _faults.break_stream(fault, StreamPlan(events))
    content_type = next(
        (v for k, v in cassette.headers.items() if k.lower() == "content-type"), "text/event-stream"
    )
    return await write_stream(
        request,
        plan.events,
        content_type=content_type.split(";")[0],
        headers=headers,
        delays=plan.delays,
        end=plan.end,
    )


def _cassette_miss(request: web.Request, body: dict[str, Any]) -> ApiError:
    """The 404 of a replay miss with on_miss=error, saying how to record a cassette."""
    return ApiError(
        404,
        f"No cassette matches {request.method} {request.path} (model {body.get('model')!r}). "
        "Record one with `chatcompat record --upstream URL --cassettes DIR`, then replay it "
        "with `chatcompat mock --cassettes DIR`.",
        code="cassette_not_found",
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /chat/completions: validate, then answer as JSON or as an SSE stream."""
    config = _config(request)
    content_type = request.headers.get("Content-Type", "application/json")
    if "json" not in content_type.lower():
        raise ApiError(
            400,
            f"Unsupported Content-Type {content_type!r}: send the request as application/json.",
        )
    raw = await request.read()
    cache = request.app[ANSWER_CACHE]
    rendered = cache.get(raw)  # this body was validated and answered before
    if rendered is not None:
        request[STREAM_ASKED] = rendered.stream
    fault = None if rendered is None else _request_fault(request, rendered.model)
    if rendered is None or (fault is not None and fault.split_utf8):
        rendered, fault = await _render(request, raw, fault, cache)
    completion_id, created = f"chatcmpl-{os.urandom(16).hex()}", int(time.time())
    timing, rng = config.timing, request.app[TIMING_RNG]
    headers = {"x-request-id": request[REQUEST_ID]}
    if not rendered.stream:
        if timing.enabled:
            await asyncio.sleep(timing.answer_delay(rendered.completion_tokens, rng))
        body = cache.stamp(rendered.body, completion_id, created)
        return web.Response(body=body, content_type=rendered.content_type, headers=headers)
    if fault is None and not timing.enabled:  # the instant path: one write
        events = [cache.stamp(rendered.body, completion_id, created)]
    else:
        events = [cache.stamp(e, completion_id, created) for e in rendered.events]
    plan = StreamPlan(events, timing.stream_delays(len(events), rng) if timing.enabled else None)
    if fault is not None:
        plan = _faults.break_stream(fault, plan)
    return await write_stream(
        request,
        plan.events,
        content_type=rendered.content_type,
        headers=headers,
        delays=plan.delays,
        end=plan.end,
    )


async def _render(
    request: web.Request, raw: bytes, fault: Fault | None, cache: AnswerCache
) -> tuple[Rendered, Fault | None]:
    """Validate body ``raw`` and render its answer with the cache's sentinel id and time (kept
    in the cache when the answer depends on the body alone); the fault, chosen once valid."""
    config = _config(request)
    body = parse_body(raw)
    request[STREAM_ASKED] = body.get("stream") is True
    body = _defects.apply(config.defects, "request_raw", body)  # before validation
    validate_request(body, config)
    body = _defects.apply(config.defects, "request", integral(body))  # before answering
    if fault is None:
        fault = _request_fault(request, body["model"])
    if config.mode == "replay" and config.on_miss == "error":
        raise _cassette_miss(request, body)
    completion_id, created = cache.completion_id, cache.created
    if config.generates:
        answer = await request.app[MODEL].answer(body, completion_id=completion_id, created=created)
    else:
        answer = template_answer(body, completion_id=completion_id, created=created)
    multibyte = fault is not None and fault.split_utf8
    if multibyte:
        answer = _faults.with_multibyte(answer)
    dialect = DIALECTS[config.dialect]
    tokens = answer.usage.completion_tokens
    if not body.get("stream"):
        completion = _defects.apply(config.defects, "completion", completion_body(answer, dialect))
        payload = json.dumps(completion).encode()
        rendered = Rendered(answer.model, False, (payload,), "application/json", tokens)
    else:
        chunks = _defects.apply(config.defects, "chunks", stream_chunks(answer, dialect))
        events = _defects.apply(config.defects, "events", [*map(encode_chunk, chunks), DONE])
        content_type = _defects.apply(config.defects, "stream_content_type", "text/event-stream")
        rendered = Rendered(answer.model, True, tuple(events), content_type, tokens)
    if not config.generates and not multibyte:  # a template answer: the body decides it all
        cache.put(raw, rendered)
    return rendered, fault


def _model_object(config: MockConfig, model_id: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": config.created,
        "owned_by": config.owned_by,
    }


async def list_models(request: web.Request) -> web.Response:
    """GET /models: the listed models."""
    config = _config(request)
    _request_fault(request, None)
    listing = {
        "object": "list",
        "data": [_model_object(config, m) for m in config.listed_models],
    }
    return _json(_defects.apply(config.defects, "models", listing))


async def retrieve_model(request: web.Request) -> web.Response:
    """GET /models/{model}: one listed model, else 404 model_not_found."""
    config = _config(request)
    model_id = request.match_info["model"]
    if model_id in config.listed_models or _defects.apply(
        config.defects, "retrieve_unknown", False
    ):
        _request_fault(request, model_id)
        return _json(_model_object(config, model_id))
    raise ApiError(
        404,
        f"The model '{model_id}' does not exist",
        param="model",
        code="model_not_found",
    )


async def health(request: web.Request) -> web.Response:
    """GET /health: 200 while the server runs."""
    return _json({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json: the API this server implements, as one OpenAPI 3.1 document."""
    base = f"{request.scheme}://{request.host}{_config(request).prefix}"
    return _json(openapi_document(base))


async def _model_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Build the reference model in the background at startup; join its thread at cleanup."""
    worker = app[MODEL]
    worker.warm_up()
    yield
    await asyncio.to_thread(worker.close)


def create_app(config: MockConfig | None = None) -> web.Application:
    """The mock server as an aiohttp application."""
    config = config or MockConfig()
    app = web.Application(
        middlewares=[_request_id, error_middleware(_render_error), _auth, _cassette],
        client_max_size=config.max_body_bytes,
    )
    app[CONFIG] = config
    app[CASSETTES] = CassetteStore.from_directories(
        config.cassettes, builtin=config.builtin_cassettes, loose=config.match == "loose"
    )
    if config.generates:
        require_reference_model()
        app[MODEL] = ModelWorker(config.sampling or DIALECTS[config.dialect].sampling)
        app.cleanup_ctx.append(_model_lifecycle)
    app[FAIL_COUNTER] = FailCounter()
    app[SCRIPTED_FAULTS] = ScriptedFaults()
    app[SCRIPTED_CASSETTES] = ScriptedCassettes()
    app[TIMING_RNG] = random.Random(config.timing_seed)
    app[ANSWER_CACHE] = AnswerCache()
    app[CASSETTE_MISSES] = BodySet()
    prefix = config.prefix
    app.router.add_routes(
        [
            web.post(f"{prefix}/chat/completions", chat_completions),
            web.get(f"{prefix}/models", list_models),
            web.get(f"{prefix}/models/{{model:.+}}", retrieve_model),
            web.get("/health", health),
            web.get("/openapi.json", openapi),
        ]
    )
    return app
