"""The aiohttp application: one route table of handlers bound to the server's state, each
wrapped by one endpoint (no middleware); the objects other modules reach are also in AppKeys."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from chatcompat.request_rules import integral
from mockserver import _defects, _faults
from mockserver._cassettes import Cassette, CassetteStore, ScriptedCassettes, replay
from mockserver._config import MockConfig
from mockserver._dialects import (
    DIALECTS,
    ChoiceChunks,
    completion_body,
    stream_chunks,
    stream_closing,
    stream_opening,
)
from mockserver._errors import ApiError, Handler, error_answer, error_body
from mockserver._faults import (
    FAULT_HEADER,
    FAULT_KEY_HEADER,
    FailCounter,
    Fault,
    ScriptedFaults,
    StreamPlan,
)
from mockserver._generate import LiveAnswer, ModelWorker, require_reference_model
from mockserver._openapi import openapi_document
from mockserver._rendered import AnswerCache, Rendered
from mockserver._sse import DONE, encode_chunk, open_stream, write_stream
from mockserver._template import template_answer
from mockserver._validation import parse_body, validate_request

__all__ = [
    "CASSETTES",
    "CONFIG",
    "FAIL_COUNTER",
    "SCRIPTED_CASSETTES",
    "SCRIPTED_FAULTS",
    "create_app",
]

log = logging.getLogger("mockserver")

CONFIG = web.AppKey("config", MockConfig)
CASSETTES = web.AppKey("cassettes", CassetteStore)
MODEL = web.AppKey("model", ModelWorker)
FAIL_COUNTER = web.AppKey("fail_counter", FailCounter)  # fail-first attempts per key
SCRIPTED_FAULTS = web.AppKey("scripted_faults", ScriptedFaults)  # rules added at run time
SCRIPTED_CASSETTES = web.AppKey("scripted_cassettes", ScriptedCassettes)  # loaded at run time


class _Ids:
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
class _Call:
    """One request on its way through a route: what the answer needs besides the request."""

    request: web.Request
    id: str  # its x-request-id
    raw: bytes = b""  # the body (read for the API routes)
    stream_asked: bool = False  # the body asked for a stream (its error may be a stream event)


Route = Callable[[_Call], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json"
    )


def _model_object(config: MockConfig, model_id: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": config.created,
        "owned_by": config.owned_by,
    }


class _Mock:
    """The server's state and its handlers, bound to it: a request costs no lookups of state.

    Every route is wrapped by :meth:`endpoint` (request id, errors in the envelope, and for API
    routes the API key and, in replay mode, the cassettes); unknown URLs and methods have routes
    too, so their 404 and 405 get the envelope without a middleware.
    """

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.defects = _defects.ActiveDefects(config.defects)  # their hooks, bound to this server
        self.cassettes = CassetteStore.from_directories(
            config.cassettes, builtin=config.builtin_cassettes, loose=config.match == "loose"
        )
        self.model: ModelWorker | None = None
        if config.generates:
            sampling = config.sampling or DIALECTS[config.dialect].sampling
            self.model = ModelWorker(sampling, context_length=config.context_length)
        self.fail_counter = FailCounter()
        self.scripted_faults = ScriptedFaults()
        self.scripted_cassettes = ScriptedCassettes()
        self.timing = config.timing
        self.timed = config.timing.enabled  # any pause can be non-zero
        self.may_fault = bool(config.fault_rules or config.defects)  # without a header
        self.timing_rng = random.Random(config.timing_seed)  # draws of the timing pauses
        self.answers = AnswerCache()  # rendered template answers by body
        self.ids = _Ids()
        self.api_prefix = config.prefix + "/"
        self.replaying = config.mode == "replay"

    def endpoint(self, route: Route, *, api: bool | None = True, replay: bool = True) -> Handler:
        """``route`` as an aiohttp handler. Every answer gets an ``x-request-id`` (streams
        before they start) and every error the envelope; API routes (``api``; None: those under
        the prefix) want the API key when one is set, and in replay mode a request matching a
        cassette gets its answer (unless ``replay`` is off: the route looks them up itself).
        One wrapper, no middleware: nothing else runs per request."""

        async def handler(request: web.Request) -> web.StreamResponse:
            call = _Call(request, self.ids.request_id())
            try:
                response = None
                if api or (api is None and request.path.startswith(self.api_prefix)):
                    if self.config.api_key is not None:
                        self._authorise(request)
                    call.raw = await request.read()
                    if replay and self.replaying:
                        response = await self._replay_match(call)
                if response is None:
                    response = await route(call)
            except Exception as exc:
                response = error_answer(request, exc, lambda _, e: self._render_error(call, e))
            if not response.prepared and "x-request-id" not in response.headers:
                response.headers["x-request-id"] = call.id
            return response

        return handler

    def _render_error(self, call: _Call, error: ApiError) -> web.Response:
        """The error envelope, after the active defects have had their say."""
        status, body = self.defects.apply("error", (error.status, error_body(error)))
        if call.stream_asked and self.defects.apply("stream_error", False):
            event = b"data: " + json.dumps(body).encode() + b"\n\n"  # an event of a 200 stream
            return web.Response(body=event + DONE, content_type="text/event-stream")
        response = _json(body, status)
        response.headers.update(error.headers)
        return response

    def _authorise(self, request: web.Request) -> None:
        """Raise the 401 of a request without ``Authorization: Bearer <the key>``."""
        if not self.defects.apply("auth", True):
            return
        header = request.headers.get("Authorization", "")
        if not header:
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.config.api_key:
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    def _request_fault(self, request: web.Request, model: str | None) -> Fault | None:
        """The fault injected into this valid request: a status fault is raised as its error,
        a mid-stream fault returned."""
        scripted, header = self.scripted_faults.rules, request.headers.get(FAULT_HEADER)
        if not (self.may_fault or scripted or header is not None):
            return None  # the common case: nothing can inject a fault
        rules = scripted + self.config.fault_rules
        fault = _faults.select_fault(
            header,
            request.headers.get(FAULT_KEY_HEADER),
            rules,
            self.fail_counter,
            path=request.path,
            prefix=self.config.prefix,
            model=model,
        )
        fault = cast("Fault | None", self.defects.apply("fault", fault))
        if fault is not None and not fault.mid_stream:
            raise _faults.status_error(fault)
        return fault

    async def _replay_match(self, call: _Call) -> web.StreamResponse | None:
        """The answer of the cassette this request matches (loaded ones first), else None."""
        method, path = call.request.method, call.request.path[len(self.config.prefix) :]
        found = self.scripted_cassettes.match(method, path, call.raw) or self.cassettes.match(
            method, path, call.raw
        )
        if found is None:
            return None
        return await self._replay(call, *found)

    async def _replay(self, call: _Call, cassette: Cassette, body: Any) -> web.StreamResponse:
        """Replay ``cassette`` with the fault this request gets: a status fault instead of it, a
        mid-stream fault on its events (when it is a 200 stream)."""
        request = call.request
        model = body.get("model") if isinstance(body, dict) else None
        fault = self._request_fault(request, model if isinstance(model, str) else None)
        if fault is None or not cassette.stream or cassette.status != 200:
            return await replay(request, cassette, speed=self.config.speed)
        events = [event + b"\n\n" for event in cassette.content.split(b"\n\n") if event]
        plan = _faults.break_stream(fault, StreamPlan(events))
        content_type = cassette.answer_headers.get("Content-Type", "text/event-stream")
        return await write_stream(
            request,
            plan.events,
            content_type=content_type.split(";")[0],
            headers={"x-request-id": call.id},
            delays=plan.delays,
            end=plan.end,
        )

    def _cassette_miss(self, request: web.Request, body: dict[str, Any]) -> ApiError:
        """The 404 of a replay miss with on_miss=error, saying how to record a cassette."""
        return ApiError(
            404,
            f"No cassette matches {request.method} {request.path} "
            f"(model {body.get('model')!r}). Record one with `chatcompat record --upstream URL "
            "--cassettes DIR`, then replay it with `chatcompat mock --cassettes DIR`.",
            code="cassette_not_found",
        )

    async def chat_completions(self, call: _Call) -> web.StreamResponse:
        """POST /chat/completions: validate, then answer as JSON or as an SSE stream."""
        request, raw = call.request, call.raw
        content_type = request.headers.get("Content-Type", "application/json")
        if "json" not in content_type.lower():
            raise ApiError(
                400,
                f"Unsupported Content-Type {content_type!r}: send the request as application/json.",
            )
        rendered = self.answers.get(raw)  # this body was validated and answered before
        # Cassettes first; a body with a kept answer missed the configured ones, which never
        # change, so only those loaded at run time can match it.
        if self.replaying and (rendered is None or self.scripted_cassettes.stores):
            replayed = await self._replay_match(call)
            if replayed is not None:
                return replayed
        fault = None
        if rendered is not None:
            call.stream_asked = rendered.stream
            fault = self._request_fault(request, rendered.model)
        if rendered is None or (fault is not None and fault.split_utf8):
            made, fault = await self._render(call, fault)
            if isinstance(made, LiveAnswer):
                return await self._stream_live(call, made)
            rendered = made
        completion_id, created = self.ids.completion_id(), int(time.time())
        timing, stamp, rng = self.timing, self.answers.stamp, self.timing_rng
        if not rendered.stream:
            if self.timed:
                await asyncio.sleep(timing.answer_delay(rendered.completion_tokens, rng))
            body = stamp(rendered.body, completion_id, created)
            return web.Response(body=body, content_type=rendered.content_type)
        if fault is None and not self.timed:  # the instant path: one write
            events = [stamp(rendered.body, completion_id, created)]
        else:
            events = [stamp(e, completion_id, created) for e in rendered.events]
        delays = timing.stream_delays(len(events), rng) if self.timed else None
        plan = StreamPlan(events, delays)
        if fault is not None:
            plan = _faults.break_stream(fault, plan)
        return await write_stream(
            request,
            plan.events,
            content_type=rendered.content_type,
            headers={"x-request-id": call.id},
            delays=plan.delays,
            end=plan.end,
        )

    async def _render(
        self, call: _Call, fault: Fault | None
    ) -> tuple[Rendered | LiveAnswer, Fault | None]:
        """Validate body ``raw`` and render its answer with the cache's sentinel id and time
        (kept in the cache when the answer depends on the body alone); the fault, chosen once
        valid. A plain stream in generate mode is not rendered: it is answered live, token by
        token as the model makes them (no fault, defect or timing to apply to it)."""
        config, defects, cache, request = self.config, self.defects, self.answers, call.request
        body = parse_body(call.raw)
        call.stream_asked = body.get("stream") is True
        body = defects.apply("request_raw", body)  # before validation
        validate_request(body, config)
        body = defects.apply("request", integral(body))  # before answering
        if fault is None:
            fault = self._request_fault(request, body["model"])
        if self.replaying and config.on_miss == "error":
            raise self._cassette_miss(request, body)
        model = self.model
        if model and fault is None and not defects and not self.timed and model.streams_live(body):
            completion_id, created = self.ids.completion_id(), int(time.time())
            return await model.live(body, completion_id=completion_id, created=created), None
        completion_id, created = cache.completion_id, cache.created
        if self.model is not None:
            answer = await self.model.answer(body, completion_id=completion_id, created=created)
        else:
            answer = template_answer(
                body,
                completion_id=completion_id,
                created=created,
                context_length=config.context_length,
            )
        multibyte = fault is not None and fault.split_utf8
        if multibyte:
            answer = _faults.with_multibyte(answer)
        dialect = DIALECTS[config.dialect]
        tokens = answer.usage.completion_tokens
        if not body.get("stream"):
            completion = defects.apply("completion", completion_body(answer, dialect))
            payload = json.dumps(completion).encode()
            rendered = Rendered(answer.model, False, (payload,), "application/json", tokens)
        else:
            chunks = defects.apply("chunks", stream_chunks(answer, dialect))
            events = defects.apply("events", [*map(encode_chunk, chunks), DONE])
            content_type = defects.apply("stream_content_type", "text/event-stream")
            rendered = Rendered(answer.model, True, tuple(events), content_type, tokens)
        if not config.generates and not multibyte:  # a template answer: the body decides it all
            cache.put(call.raw, rendered)
        return rendered, fault

    async def _stream_live(self, call: _Call, live: LiveAnswer) -> web.StreamResponse:
        """Stream ``live``: each token's chunk written as the model makes it; the bytes are
        those :func:`stream_chunks` gives the whole answer."""
        dialect = DIALECTS[self.config.dialect]
        chunker = ChoiceChunks(live.head, dialect, 0)
        try:
            response = await open_stream(call.request, headers={"x-request-id": call.id})
            ready = [*stream_opening(live.head, dialect), *chunker.start()]
            try:
                async for tokens in live.tokens():
                    for token in tokens:
                        ready.extend(chunker.token(token))
                    if ready:
                        await response.write(b"".join(map(encode_chunk, ready)))
                        ready = []
            except (ConnectionResetError, asyncio.CancelledError):
                raise
            except Exception as exc:  # the stream has started: the error is its last event
                log.error("generation failed mid-stream", exc_info=exc)
                error = error_body(ApiError(500, "The server had an error while generating."))
                await response.write(b"data: " + json.dumps(error).encode() + b"\n\n")
                await response.write_eof()
                return response
            assert live.answer is not None
            last = ready + chunker.finish(live.answer.choices[0].finish_reason)
            stream_closing(live.answer, dialect, last)
            await response.write(b"".join(map(encode_chunk, last)) + DONE)
            await response.write_eof()
            return response
        finally:
            live.cancel.set()  # a stream that ended early stops the model

    async def list_models(self, call: _Call) -> web.Response:
        """GET /models: the listed models."""
        config = self.config
        self._request_fault(call.request, None)
        listing = {
            "object": "list",
            "data": [_model_object(config, m) for m in config.listed_models],
        }
        return _json(self.defects.apply("models", listing))

    async def retrieve_model(self, call: _Call) -> web.Response:
        """GET /models/{model}: one listed model, else 404 model_not_found."""
        request = call.request
        model_id = request.match_info["model"]
        if model_id in self.config.listed_models or self.defects.apply("retrieve_unknown", False):
            self._request_fault(request, model_id)
            return _json(_model_object(self.config, model_id))
        raise ApiError(
            404,
            f"The model '{model_id}' does not exist",
            param="model",
            code="model_not_found",
        )

    async def openapi(self, call: _Call) -> web.Response:
        """GET /openapi.json: the API this server implements, as one OpenAPI 3.1 document."""
        request = call.request
        return _json(openapi_document(f"{request.scheme}://{request.host}{self.config.prefix}"))

    def routes(self) -> list[web.RouteDef]:
        """The route table: each path's methods, the 405 for its other methods, and the 404 of
        every other URL, all through :meth:`endpoint`."""
        prefix, endpoint = self.config.prefix, self.endpoint
        routes = [
            # chat completions look up cassettes after their answer cache
            web.post(f"{prefix}/chat/completions", endpoint(self.chat_completions, replay=False)),
            web.get(f"{prefix}/models", endpoint(self.list_models)),  # GET routes: HEAD too
            web.get(f"{prefix}/models/{{model:.+}}", endpoint(self.retrieve_model)),
            web.get("/health", endpoint(_health, api=False)),
            web.get("/openapi.json", endpoint(self.openapi, api=False)),
        ]
        for route in list(routes):
            allowed = (route.method, "HEAD") if route.method == "GET" else (route.method,)
            routes.append(web.route("*", route.path, endpoint(_not_allowed(allowed), api=None)))
        routes.append(web.route("*", "/{path:.*}", endpoint(_unknown_url, api=None)))
        return routes


async def _health(call: _Call) -> web.Response:
    """GET /health: 200 while the server runs."""
    return _json({"status": "ok"})


def _not_allowed(allowed: tuple[str, ...]) -> Route:
    """The route answering a method ``allowed`` does not hold: 405 with ``Allow``."""

    async def route(call: _Call) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(call.request.method, allowed)

    return route


async def _unknown_url(call: _Call) -> web.StreamResponse:
    """Any URL no route has: 404."""
    raise web.HTTPNotFound()


async def _model_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Build the reference model in the background at startup; join its thread at cleanup."""
    worker = app[MODEL]
    worker.warm_up()
    yield
    await asyncio.to_thread(worker.close)


def create_app(config: MockConfig | None = None) -> web.Application:
    """The mock server as an aiohttp application."""
    config = config or MockConfig()
    if config.generates:
        require_reference_model()
    mock = _Mock(config)
    app = web.Application(client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[CASSETTES] = mock.cassettes
    app[FAIL_COUNTER] = mock.fail_counter
    app[SCRIPTED_FAULTS] = mock.scripted_faults
    app[SCRIPTED_CASSETTES] = mock.scripted_cassettes
    if mock.model is not None:
        app[MODEL] = mock.model
        app.cleanup_ctx.append(_model_lifecycle)
    app.router.add_routes(mock.routes())
    return app
