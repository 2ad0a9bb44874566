"""The aiohttp application: one route table of thin handlers over the server's state, each
wrapped by one endpoint (no middleware); chat completions go through the answer pipeline
(:mod:`mockserver._pipeline`). The state, and the parts of it the pytest plugin scripts, are
in AppKeys."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from mockserver._api_key import bearer_matches
from mockserver._body import read_body
from mockserver._cassettes import CassetteStore, ScriptedCassettes
from mockserver._config import MockConfig
from mockserver._control import CONTROL_ROUTES
from mockserver._defects import RequestDefects
from mockserver._delivery import send_cassette
from mockserver._errors import ApiError, Handler, error_answer, error_body
from mockserver._faults import FailCounter, ScriptedFaults
from mockserver._generate import ModelWorker, require_reference_model
from mockserver._openapi import openapi_document
from mockserver._pipeline import chat_completion
from mockserver._quick import QUICK_PATH, QuickPath
from mockserver._sources import find_cassette
from mockserver._sse import DONE, encode_error, encode_error_line
from mockserver._state import Call, MockState

__all__ = [
    "CASSETTES",
    "CONFIG",
    "FAIL_COUNTER",
    "SCRIPTED_CASSETTES",
    "SCRIPTED_DEFECTS",
    "SCRIPTED_FAULTS",
    "STATE",
    "create_app",
]

STATE = web.AppKey("state", MockState)
CONFIG = web.AppKey("config", MockConfig)
CASSETTES = web.AppKey("cassettes", CassetteStore)
MODEL = web.AppKey("model", ModelWorker)
FAIL_COUNTER = web.AppKey("fail_counter", FailCounter)  # fail-first attempts per key
SCRIPTED_FAULTS = web.AppKey("scripted_faults", ScriptedFaults)  # rules added at run time
SCRIPTED_CASSETTES = web.AppKey("scripted_cassettes", ScriptedCassettes)  # loaded at run time
SCRIPTED_DEFECTS = web.AppKey("scripted_defects", RequestDefects)  # added at run time

LOADING_RETRY_AFTER = 1  # seconds /health tells a client to wait while the model loads

Route = Callable[[MockState, Call], Awaitable[web.StreamResponse]]
ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json"
    )


def endpoint(
    state: MockState,
    route: Route,
    *,
    api: bool | None = True,
    replay: bool = True,
    control: bool = False,
) -> Handler:
    """``route`` as an aiohttp handler. Every answer gets an ``x-request-id`` (streams before
    they start) and every error the envelope; API routes (``api``; None: those under the
    prefix) want the API key when one is set; with a record mode they are replayed from or
    recorded to cassettes (:mod:`mockserver._upstream`), else in replay mode a request
    matching a cassette gets its answer (unless ``replay`` is off: the route looks them up
    itself). With the control routes on, every request but a ``control`` route's goes into
    the request log. One wrapper, no middleware: nothing else runs per request."""
    replaying = replay and state.replaying and not control
    recorder = None if control else state.recorder
    log = None if control or not state.config.control else state.requests

    async def handler(request: web.Request) -> web.StreamResponse:
        call = Call(request, state.ids.request_id(), state.defects)
        entry = None
        try:
            response = None
            state.read_fault_header(call)
            under_api = _under_api(state, api, request)
            if under_api:
                if state.config.api_key is not None:
                    _authorise(state, call)
                call.raw = await read_body(request)
            if log is not None:
                entry = log.add(request.method, request.path_qs, request.raw_headers, call.raw)
            if under_api and recorder is not None:
                response = await recorder.answer(state, call)
            elif under_api and replaying:
                found = find_cassette(state, call)
                if found is not None:
                    response = await send_cassette(state, call, *found)
            if response is None:
                response = await route(state, call)
        except Exception as exc:
            if entry is None and log is not None:
                entry = log.add(request.method, request.path_qs, request.raw_headers, call.raw)
            response = error_answer(request, exc, lambda _, e: _render_error(state, call, e))
        if entry is not None:
            entry.status = response.status
        if not response.prepared and "x-request-id" not in response.headers:
            response.headers["x-request-id"] = call.id
        return response

    return handler


def _under_api(state: MockState, api: bool | None, request: web.Request) -> bool:
    """Whether ``request`` is an API call (wants the key; its body is read before the route)."""
    return bool(api or (api is None and request.path.startswith(state.config.prefix + "/")))


def _expect(state: MockState, *, api: bool | None = True) -> ExpectHandler:
    """The answer to a request's ``Expect`` header, before its body is sent (RFC 9110
    section 10.1.1): ``100-continue`` gets "100 Continue" unless the request is answered
    already, by a 413 for a Content-Length past the body limit or a 401 for a missing or
    wrong key (an API route, ``api`` as in :func:`endpoint`), both closing the connection;
    any other expectation gets 417. All in the envelope, with an ``x-request-id``."""

    async def handler(request: web.Request) -> web.StreamResponse | None:
        expected = request.headers.get("Expect", "")
        error = None
        if expected.lower() != "100-continue":
            error = ApiError(
                417,
                f"Unsupported Expect: {expected[:100]!r}; only 100-continue is.",
                code="expectation_failed",
            )
        elif (request.content_length or 0) > state.config.max_body_bytes:
            error = ApiError(413, "Request body too large.", code="request_too_large")
        elif _under_api(state, api, request) and state.config.api_key is not None:
            try:
                call = Call(request, "", state.defects)
                state.read_fault_header(call)
                _authorise(state, call)
            except ApiError as exc:
                error = exc
        if error is None:
            if request.version >= (1, 1):
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                request.writer.output_size = 0  # the answer's own bytes are still to come
            return None
        call = Call(request, state.ids.request_id(), state.defects)
        request.content.feed_eof()  # the body is not read: no lingering read after the answer
        response = _render_error(state, call, error)
        response.headers["x-request-id"] = call.id
        response.force_close()
        return response

    return handler


def _render_error(state: MockState, call: Call, error: ApiError) -> web.Response:
    """The error envelope, after the call's defects have had their say."""
    status, body = call.defects.apply("error", (error.status, error_body(error)))
    # a stream request's error sent in a 200 stream, as a data event or an "error:" line
    how, status, body = call.defects.apply("stream_error", (None, status, body))
    if call.stream_asked and how is not None:
        event = encode_error(body) if how == "data" else encode_error_line(body)
        return web.Response(body=event + DONE, content_type="text/event-stream")
    response = _json(body, status)
    response.headers.update(error.headers)
    if error.headers.get("Connection") == "close":
        response.force_close()  # aiohttp keeps the connection open unless told this way
    return response


def _authorise(state: MockState, call: Call) -> None:
    """Raise the 401 of a request without ``Authorization: Bearer <the key>``."""
    if not call.defects.apply("auth", True):
        return
    header = call.request.headers.get("Authorization", "")
    if not header:
        raise ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="invalid_api_key",
        )
    if not bearer_matches(header, state.config.api_key or ""):
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")


def context_length(state: MockState) -> int:
    """Tokens of prompt and completion a model served takes: the reference model's context
    when it answers (generate mode, ``--on-miss generate``), else the configured one."""
    return state.model.context if state.model is not None else state.config.context_length


def _model_object(state: MockState, model_id: str) -> dict[str, Any]:
    """A model card: OpenAI's four fields, then the context length under the names servers
    use for it (vLLM ``max_model_len``; OpenRouter, Together and Fireworks
    ``context_length``; Groq ``context_window``), which ``chatcompat check --probe`` reads.
    OpenAI's Model schema allows fields beyond its four."""
    config, context = state.config, context_length(state)
    return {
        "id": model_id,
        "object": "model",
        "created": config.created,
        "owned_by": config.owned_by,
        "max_model_len": context,
        "context_length": context,
        "context_window": context,
    }


async def list_models(state: MockState, call: Call) -> web.Response:
    """GET /models: the listed models."""
    config = state.config
    state.fault_for(call, None)
    listing = {
        "object": "list",
        "data": [_model_object(state, m) for m in config.listed_models],
    }
    return _json(call.defects.apply("models", listing))


async def retrieve_model(state: MockState, call: Call) -> web.Response:
    """GET /models/{model}: one listed model, else 404 model_not_found."""
    model_id = call.request.match_info["model"]
    if model_id in state.config.listed_models or call.defects.apply("retrieve_unknown", False):
        state.fault_for(call, model_id)
        return _json(_model_object(state, model_id))
    raise ApiError(
        404,
        f"The model '{model_id}' does not exist",
        param="model",
        code="model_not_found",
    )


async def openapi(state: MockState, call: Call) -> web.Response:
    """GET /openapi.json: the API this server implements, as one OpenAPI 3.1 document."""
    request = call.request
    return _json(openapi_document(f"{request.scheme}://{request.host}{state.config.prefix}"))


def routes(state: MockState) -> list[web.RouteDef]:
    """The route table: each path's methods, the 405 for its other methods, and the 404 of
    every other URL, all through :func:`endpoint`."""
    prefix = state.config.prefix
    quiet = _expect(state, api=False)
    table = [
        # chat completions look up cassettes in the pipeline, after the answer cache
        web.post(
            f"{prefix}/chat/completions",
            endpoint(state, chat_completion, replay=False),
            expect_handler=_expect(state),
        ),
        web.get(f"{prefix}/models", endpoint(state, list_models), expect_handler=_expect(state)),
        web.get(
            f"{prefix}/models/{{model:.+}}",
            endpoint(state, retrieve_model),
            expect_handler=_expect(state),
        ),  # GET routes: HEAD too
        web.get("/health", endpoint(state, _health, api=False), expect_handler=quiet),
        web.get("/openapi.json", endpoint(state, openapi, api=False), expect_handler=quiet),
    ]
    if state.config.control:
        control = _expect(state)
        table += [
            web.route(method, path, endpoint(state, route, control=True), expect_handler=control)
            for method, path, route in CONTROL_ROUTES
        ]
    other = _expect(state, api=None)
    methods: dict[str, tuple[str, ...]] = {}  # path -> the methods its routes answer
    for route in table:
        get = ("HEAD",) if route.method == "GET" else ()
        methods[route.path] = (*methods.get(route.path, ()), route.method, *get)
    for path, allowed in methods.items():
        handler = endpoint(state, _not_allowed(allowed), api=None)
        table.append(web.route("*", path, handler, expect_handler=other))
    table.append(
        web.route("*", "/{path:.*}", endpoint(state, _unknown_url, api=None), expect_handler=other)
    )
    return table


async def _health(state: MockState, call: Call) -> web.Response:
    """GET /health: 200 ``{"status": "ok"}`` once the server can answer; while the reference
    model loads (generate mode, ``--on-miss generate``), 503 ``{"status": "loading"}`` with
    ``Retry-After`` (seconds), as load balancers and Kubernetes readiness probes expect."""
    if state.model is not None and not state.model.ready.is_set():
        response = _json({"status": "loading"}, 503)
        response.headers["Retry-After"] = str(LOADING_RETRY_AFTER)
        return response
    return _json({"status": "ok"})


def _not_allowed(allowed: tuple[str, ...]) -> Route:
    """The route answering a method ``allowed`` does not hold: 405 with ``Allow``."""

    async def route(state: MockState, call: Call) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(call.request.method, allowed)

    return route


async def _unknown_url(state: MockState, call: Call) -> web.StreamResponse:
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
    state = MockState(config)
    app = web.Application(client_max_size=config.max_body_bytes)
    app[STATE] = state
    app[CONFIG] = config
    app[CASSETTES] = state.cassettes
    app[FAIL_COUNTER] = state.fail_counter
    app[SCRIPTED_FAULTS] = state.scripted_faults
    app[SCRIPTED_CASSETTES] = state.scripted_cassettes
    app[SCRIPTED_DEFECTS] = state.request_defects
    if state.model is not None:
        app[MODEL] = state.model
        app.cleanup_ctx.append(_model_lifecycle)
    if state.recorder is not None:
        app.cleanup_ctx.append(state.recorder.lifecycle)
    if config.quick_path:
        app[QUICK_PATH] = QuickPath(state)
    app.router.add_routes(routes(state))
    return app
