"""Schemathesis against schemas/openapi.yaml (group "property"): generated requests to every
operation, each answer checked by schemathesis's own checks.

Positive cases get the model under test (a random model name would be answered 404) and are
bounded in tokens (max_tokens <= 16, n <= 2); negative cases keep their mutation and get the
model too when theirs is a string (a string model is always schema-valid, so the pin never
hides a mutation). Streams: schemathesis reads a ``text/event-stream`` answer as events but
validates the event objects, not their JSON ``data``, so stream answers are validated here
instead, event by event against the chunk schema, with ``[DONE]`` last. Requests go through
``ctx.send`` (budget, timeouts, 429 retries); the first failing case ends the run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml
from hypothesis import given
from hypothesis.errors import Unsatisfiable

from chatcompat import schemas
from conformance._checks.properties import (
    HYPOTHESIS_LOCK,
    Bridge,
    Halt,
    hypothesis_settings,
    in_thread,
    lock_released,
    rejection_problem,
    stream_problem,
)
from conformance._context import WEATHER_TOOL, Context
from conformance._http import SECRET_HEADERS, Exchange
from conformance._outcome import CheckFailed
from conformance._registry import check
from conformance.strategies import example_requests

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy
    from schemathesis import Case
    from schemathesis.schemas import APIOperation

__all__ = [
    "EXPLICIT_INVALID",
    "MAX_N",
    "MAX_TOKENS",
    "OPERATIONS",
    "RUNS",
    "SANITIZED_KEYS",
    "SANITIZED_MARKERS",
    "TOOL_REQUEST",
    "Run",
    "schemathesis_openapi",
]


class Run(NamedTuple):
    label: str  # the operation, "METHOD /path"
    positive: bool  # valid cases (else schemathesis's negative mode)
    examples: int


# (operation, positive, examples): cheap operations first, so that a broken endpoint fails
# before any chat request is generated. Once their model is pinned, the GET operations have
# one valid request each and nothing that schemathesis can make invalid.
RUNS = (
    ("GET /models", True, 1),
    ("GET /models/{model}", True, 1),
    ("POST /chat/completions", True, 10**6),  # bounded by ctx.budget.max_examples
    ("POST /chat/completions", False, 10**6),
)
OPERATIONS = tuple(dict.fromkeys(label for label, _, _ in RUNS))
# Schema-invalid values, each alone in a small valid request: parameters few clients send
# (a server that drops them unvalidated answers 200), a named tool_choice without its function,
# and an invalid stream request (refused before the stream starts). Schemathesis's drawn
# negative cases may or may not reach these; these always run.
EXPLICIT_INVALID: tuple[dict[str, Any], ...] = (
    {"metadata": "not an object"},
    {"store": "yes"},
    {"service_tier": 7},
    {"modalities": "text"},
    {"tool_choice": {"type": "function"}},
    {"stream": True, "metadata": "not an object"},
)
TOOL_REQUEST: dict[str, Any] = {
    "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    "tools": [WEATHER_TOOL],
    "tool_choice": "required",
    "max_tokens": 16,
}
MAX_TOKENS = 16  # per choice, in positive cases
MAX_N = 2
_CASES: dict[tuple[str, Run], tuple[Case[Any], ...]] = {}
_PENDING: dict[tuple[str, Run], threading.Event] = {}
_FAILED: dict[tuple[str, Run], str] = {}  # why a generation stopped short
_CASES_LOCK = threading.Lock()
_DROPPED_HEADERS = {"authorization", "content-length", "connection", "host"}


def _retarget(node: Any, old: str, new: str) -> Any:
    """``node`` with every ``$ref`` starting with ``old`` starting with ``new`` instead."""
    if isinstance(node, dict):
        return {
            k: (new + v[len(old) :])
            if k == "$ref" and isinstance(v, str) and v.startswith(old)
            else _retarget(v, old, new)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_retarget(v, old, new) for v in node]
    return node


# What schemathesis's output (its "Reproduce" curl) masks: credentials only. Its defaults also
# mask every key holding a marker such as "token" or "key" (SanitizationConfig in
# schemathesis/config/_output.py: DEFAULT_KEYS_TO_SANITIZE, DEFAULT_SENSITIVE_MARKERS), so that
# "max_tokens": 16 was printed "[Filtered]" and the command got a 400 instead of what it
# reproduced (issue 13). An empty tuple means the defaults there, so the markers name
# credentials too. The keys: the credential headers the suite never records, and two more.
SANITIZED_KEYS = tuple(sorted(SECRET_HEADERS | {"api_key", "set-cookie"}))
SANITIZED_MARKERS = ("authorization", "api-key", "cookie")


def _config() -> Any:
    """Schemathesis's configuration: its defaults, but output sanitised of credentials only."""
    from schemathesis.config import OutputConfig, SanitizationConfig, SchemathesisConfig

    sanitization = SanitizationConfig(
        keys_to_sanitize=SANITIZED_KEYS, sensitive_markers=SANITIZED_MARKERS
    )
    return SchemathesisConfig(output=OutputConfig(sanitization=sanitization))


@functools.cache
def _operations(level: schemas.Level) -> dict[str, APIOperation[Any, Any, Any, Any]]:
    """The OpenAPI document's operations by label, its relative $refs pointing at ``level``."""
    import schemathesis
    from schemathesis.core.result import Err

    raw = yaml.safe_load(schemas.openapi_text())
    if level != "compatible":
        raw = _retarget(raw, "./compatible/", f"./{level}/")
    schema = schemathesis.openapi.from_dict(raw, config=_config())
    # Relative $refs resolve from the document's own location (schemas/README.md).
    schema.location = (Path(str(schemas.root())) / "openapi.yaml").resolve().as_uri()
    operations = {}
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations[result.ok().label] = result.ok()
    return {label: operations[label] for label in OPERATIONS}


@functools.cache
def _strategy(level: schemas.Level, label: str, positive: bool) -> SearchStrategy[Case[Any]]:
    """Schemathesis's case strategy for one operation and mode, built once per process."""
    from schemathesis.generation import GenerationMode

    mode = GenerationMode.POSITIVE if positive else GenerationMode.NEGATIVE
    strategy: SearchStrategy[Case[Any]] = _operations(level)[label].as_strategy(
        generation_mode=mode
    )
    return strategy


def _bounded(body: dict[str, Any], model: str, *, positive: bool) -> None:
    """Pin the model and bound the tokens of a generated chat request, in place, without
    changing whether it is valid."""
    if positive or isinstance(body.get("model"), str):
        body["model"] = model
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
            body[key] = MAX_TOKENS
    if positive and body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = MAX_TOKENS
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and MAX_N < n <= 128:
        body["n"] = MAX_N


def _prepare(case: Case[Any], ctx: Context, *, positive: bool) -> Any:
    """The case pinned and bounded, as the ``requests`` request schemathesis would send."""
    import requests

    if isinstance(case.body, dict) and case.path == "/chat/completions":
        _bounded(case.body, ctx.endpoint.model, positive=positive)
    if positive and "model" in case.path_parameters:
        case.path_parameters["model"] = ctx.endpoint.model
    kwargs = case.as_transport_kwargs(base_url=ctx.endpoint.base_url)
    allowed = ("method", "url", "headers", "params", "data", "json", "files", "cookies")
    return requests.Request(**{k: v for k, v in kwargs.items() if k in allowed}).prepare()


def _response(exchange: Exchange, prepared: Any) -> Any:
    """The exchange as the Response that schemathesis's checks read."""
    from schemathesis.core.transport import Response

    assert exchange.status is not None
    try:
        reason = HTTPStatus(exchange.status).phrase
    except ValueError:
        reason = ""
    return Response(
        status_code=exchange.status,
        headers={k: [v] for k, v in exchange.headers.items()},
        content=exchange.body,
        request=prepared,
        elapsed=exchange.elapsed,
        verify=True,
        message=reason,
        encoding="utf-8",
    )


def _reproduction(ctx: Context, case: Case[Any]) -> str:
    """Schemathesis's curl command for ``case``; with a key, its Authorization header reads the
    key from $CHATCOMPAT_API_KEY (schemathesis masks the header's value, whatever it is)."""
    if not ctx.endpoint.api_key:
        return str(case.as_curl_command(base_url=ctx.endpoint.base_url))
    command = case.as_curl_command(
        headers={"Authorization": "Bearer $CHATCOMPAT_API_KEY"}, base_url=ctx.endpoint.base_url
    )
    return str(command).replace(
        "-H 'Authorization: [Filtered]'", '-H "Authorization: Bearer $CHATCOMPAT_API_KEY"', 1
    )


def _judge(
    ctx: Context, case: Case[Any], prepared: Any, exchange: Exchange, *, positive: bool
) -> CheckFailed | None:
    """Schemathesis's checks on the answer (the stream schema checked here), or None."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    label = f"{case.method.upper()} {case.path}"
    reproduce = "Reproduce: " + _reproduction(ctx, case)[:600]
    if exchange.status is None:
        return CheckFailed(
            f"{label}: no answer came",
            received=f"{exchange.error}\n{reproduce}",
            exchange=exchange,
        )
    streamed = exchange.content_type == "text/event-stream"
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    checks += [negative_data_rejection] + ([] if streamed else [response_schema_conformance])
    problems: list[str] = []
    try:
        case.validate_response(_response(exchange, prepared), checks=checks)
    except FailureGroup as group:
        problems += [f"{f.title}: {f.message}"[:500] for f in group.exceptions]
    if streamed and exchange.status == 200:
        problem = stream_problem(ctx, exchange)
        if problem:
            problems.append(f"stream answer: {problem}")
    if not problems:
        return None
    return CheckFailed(
        f"{label} ({'positive' if positive else 'negative'} case): "
        f"{len(problems)} schemathesis check(s) failed",
        received="\n".join(problems) + "\n" + reproduce,
        exchange=exchange,
    )


def _send(bridge: Bridge, prepared: Any) -> Exchange:
    base = bridge.ctx.endpoint.base_url
    url = str(prepared.url)
    assert url.startswith(base), (url, base)
    headers = {k: v for k, v in prepared.headers.items() if k.lower() not in _DROPPED_HEADERS}
    raw = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    return bridge.send(prepared.method, url[len(base) :], raw=raw, headers=headers)


def _generate(level: schemas.Level, run: Run, done: threading.Event) -> None:
    """Make the cases of ``run`` into _CASES, then set ``done`` (a thread of its own)."""
    found: list[Case[Any]] = []

    def collect(case: Case[Any]) -> None:
        found.append(case)

    try:
        with HYPOTHESIS_LOCK, contextlib.suppress(Unsatisfiable):  # Unsatisfiable: none to make
            strategy = _strategy(level, run.label, run.positive)
            hypothesis_settings(run.examples, shrink=False)(given(strategy)(collect))()
    except Exception as exc:  # a thread of its own: the check reports it, nothing else would
        _FAILED[(level, run)] = f"schemathesis could not generate cases: {exc!r}"[:500]
    finally:
        _CASES[(level, run)] = tuple(found)
        done.set()


def _cases(level: schemas.Level, run: Run, stop: threading.Event) -> tuple[Case[Any], ...]:
    """The cases of one run, made by hypothesis once per process (derandomized: the same for
    the same installation and loaded modules; hypothesis mixes in constants of local source).
    They are made in a daemon thread that a cancelled check leaves running, so that a slow
    first generation still serves the next run."""
    key = (level, run)
    with _CASES_LOCK:
        done = _PENDING.get(key)
        if done is None:
            done = _PENDING[key] = threading.Event()
            threading.Thread(target=_generate, args=(level, run, done), daemon=True).start()
    with lock_released(stop):  # the generating thread needs it
        while not done.wait(0.2):
            if stop.is_set():
                raise Halt()
    if key in _FAILED:
        raise Halt(CheckFailed(f"{run.label}: {_FAILED[key]}"))
    return _CASES[key]


def _explicit(ctx: Context) -> list[Case[Any]]:
    """Hand-written valid chat requests (most parameters at once, streamed or not, and a tool
    call): schemathesis's own valid cases rarely pass a server's rules, these always should."""
    capabilities = ctx.endpoint.capabilities
    bodies = example_requests(
        ctx.endpoint.model,
        max_n=MAX_N if "n" in capabilities else 1,
        logprobs="logprobs" in capabilities,
        extensions="ext" in capabilities,
    )
    bodies.append({**TOOL_REQUEST, "model": ctx.endpoint.model})
    operation = _operations(ctx.schema_level)["POST /chat/completions"]
    return [operation.Case(body=body, media_type="application/json") for body in bodies]


def _try(
    ctx: Context, bridge: Bridge, cases: list[Case[Any]], sent: set[str], *, positive: bool
) -> None:
    """Send each case not sent yet and judge its answer; Halt with the first failure."""
    for case in cases:
        prepared = _prepare(case, ctx, positive=positive)
        key = json.dumps([prepared.method, prepared.url, repr(prepared.body)])
        if key in sent:
            continue
        sent.add(key)
        problem = _judge(ctx, case, prepared, _send(bridge, prepared), positive=positive)
        if problem is not None:
            raise Halt(problem)


def _explore(ctx: Context, bridge: Bridge) -> None:
    """The explicit cases, then every run of every operation (its cases made when its turn
    comes); raises Halt with the first failure."""
    sent: set[str] = set()
    _try(ctx, bridge, _explicit(ctx), sent, positive=True)
    _explicit_invalid(ctx, bridge)
    for label, positive, examples in RUNS:
        run = Run(label, positive, min(examples, ctx.budget.max_examples))
        cases = [c.derive() for c in _cases(ctx.schema_level, run, bridge.stop)]
        _try(ctx, bridge, cases, sent, positive=positive)


def _explicit_invalid(ctx: Context, bridge: Bridge) -> None:
    """Each EXPLICIT_INVALID change to a small valid request must get 4xx in the envelope."""
    for change in EXPLICIT_INVALID:
        body = {
            "model": ctx.endpoint.model,
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": MAX_TOKENS,
            **change,
        }
        problem = rejection_problem(ctx, json.dumps(change), bridge.chat(body))
        if problem is not None:
            problem.message = f"POST /chat/completions (explicit invalid case): {problem.message}"
            raise Halt(problem)


@check(group="property", severity="must")
async def schemathesis_openapi(ctx: Context) -> None:
    """Schemathesis cases for every operation of schemas/openapi.yaml get conforming answers.
    Valid and invalid POST /chat/completions, GET /models and GET /models/{model} cases (the model
    pinned) pass not_a_server_error, status_code_conformance, content_type_conformance,
    response_schema_conformance and negative_data_rejection."""
    await in_thread(ctx, lambda bridge: _explore(ctx, bridge))
