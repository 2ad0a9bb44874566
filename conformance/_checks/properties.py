"""Property-based checks (group "property"): hypothesis draws valid and invalid chat requests
(conformance.strategies) and every answer must be what the API promises.

Hypothesis runs in a worker thread (so that the runner's time limits apply); its requests go
through the run's event loop with ``ctx.send``, so they count in the budget and honour the
endpoint's timeouts. Runs are derandomized, without a database and without deadlines, bounded
by ``ctx.budget.max_examples``; each distinct request is sent once, and shrinking a failure may
send at most :data:`SHRINK_REQUESTS` more.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings

from conformance import _json as strict_json
from conformance import strategies
from conformance._assertions import envelope_problem, is_prompt_filter_chunk
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check
from conformance._sse import parse_events

__all__ = [
    "HYPOTHESIS_LOCK",
    "SHRINK_REQUESTS",
    "Bridge",
    "Halt",
    "JudgedRequests",
    "answer_problem",
    "hypothesis_settings",
    "in_thread",
    "lock_released",
    "prop_invalid_requests",
    "prop_valid_requests",
    "rejection_problem",
    "stream_problem",
]

SHRINK_REQUESTS = 8  # requests a shrinking failure may add
# Hypothesis runs one at a time: two in parallel threads can trip CPython 3.11's ast module
# ("AST constructor recursion depth mismatch", python/cpython#106905) when hypothesis parses
# source, and hypothesis does not promise thread safety.
with contextlib.suppress(ImportError):
    # Imported whole before any check runs: hypothesis reads sys.modules["numpy"].ndarray
    # (hypothesis/internal/conjecture/utils.py: check_sample) while the oracle's thread may be
    # importing torch, which leaves a half-made numpy there ("partially initialized module").
    import numpy  # noqa: F401
HYPOTHESIS_LOCK = threading.Lock()
_HELD = threading.local()  # .value: whether this worker thread holds HYPOTHESIS_LOCK


class Halt(BaseException):
    """Stops a hypothesis run at once (not a test failure, so hypothesis does not shrink it):
    the check was cancelled, the budget is spent, or a failure ends the run."""

    def __init__(self, outcome: CheckFailed | CheckSkipped | None = None) -> None:
        super().__init__(str(outcome or "stopped"))
        self.outcome = outcome


class Bridge:
    """Sends requests from a worker thread through the run's event loop; halts when told."""

    def __init__(self, ctx: Context, loop: asyncio.AbstractEventLoop) -> None:
        self.ctx = ctx
        self.loop = loop
        self.stop = threading.Event()

    def send(self, method: str, path: str, **kwargs: Any) -> Exchange:
        """``ctx.send`` from the worker thread (raises Halt when stopped or out of budget)."""
        if self.stop.is_set():
            raise Halt()
        future = asyncio.run_coroutine_threadsafe(self.ctx.send(method, path, **kwargs), self.loop)
        while True:
            try:
                return future.result(0.2)
            except TimeoutError:
                if self.stop.is_set():
                    future.cancel()
                    raise Halt() from None
            except CheckSkipped as exc:  # the budget is spent
                raise Halt(exc) from None

    def chat(self, body: Any) -> Exchange:
        """POST /chat/completions from the worker thread."""
        return self.send("POST", "/chat/completions", body=body)


def _whole_numpy() -> None:
    """Import numpy, if installed, before hypothesis runs: hypothesis reads
    ``sys.modules["numpy"].ndarray``, which a numpy half imported by another thread (the
    oracle's torch, in reference mode) lacks; importing waits for that import to finish."""
    with contextlib.suppress(ImportError):
        importlib.import_module("numpy")


async def in_thread(
    ctx: Context, work: Callable[[Bridge], None], *, exclusive: bool = True
) -> None:
    """Run ``work`` in a worker thread (holding HYPOTHESIS_LOCK when ``exclusive``); a Halt it
    raises becomes its outcome (raised here), and a cancelled check tells the thread to stop
    before its next request."""
    bridge = Bridge(ctx, asyncio.get_running_loop())

    def guarded() -> CheckFailed | CheckSkipped | None:
        while exclusive and not HYPOTHESIS_LOCK.acquire(timeout=0.2):
            if bridge.stop.is_set():
                return None
        _HELD.value = exclusive
        try:
            _whole_numpy()
            work(bridge)
        except Halt as halt:
            return halt.outcome
        finally:
            if _HELD.value:
                HYPOTHESIS_LOCK.release()
                _HELD.value = False
        return None

    try:
        outcome = await asyncio.to_thread(guarded)
    finally:
        bridge.stop.set()
    if outcome is not None:
        raise outcome


@contextlib.contextmanager
def lock_released(stop: threading.Event) -> Iterator[None]:
    """Let other threads hold HYPOTHESIS_LOCK while this worker only waits; taken back after
    (a Halt instead when ``stop`` is set meanwhile)."""
    HYPOTHESIS_LOCK.release()
    _HELD.value = False
    try:
        yield
    finally:
        while not HYPOTHESIS_LOCK.acquire(timeout=0.2):
            if stop.is_set():
                raise Halt()  # the check is cancelled: nothing else matters
        _HELD.value = True


def hypothesis_settings(max_examples: int, *, shrink: bool) -> settings:
    """Derandomized, no database, no deadline, quiet; shrinking only when ``shrink``."""
    phases = (Phase.explicit, Phase.generate) + ((Phase.shrink,) if shrink else ())
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )


class JudgedRequests:
    """Each distinct request is answered once: hypothesis replays and shrink steps that repeat
    a request reuse its outcome, and after the first failure only ``shrink_requests`` new
    requests are sent (unseen candidates then count as passing, which ends the shrink)."""

    def __init__(self, shrink_requests: int = SHRINK_REQUESTS) -> None:
        self.outcomes: dict[str, CheckFailed | None] = {}
        self.shrink_requests = shrink_requests
        self.failed = False
        self.sent_after_failure = 0

    def check(self, key: str, judge: Callable[[], CheckFailed | None]) -> None:
        """Raise the failure ``judge`` finds for request ``key`` (judged once per key)."""
        if key not in self.outcomes:
            if self.failed and self.sent_after_failure >= self.shrink_requests:
                return
            if self.failed:
                self.sent_after_failure += 1
            self.outcomes[key] = judge()
        problem = self.outcomes[key]
        if problem is not None:
            self.failed = True
            raise CheckFailed(
                problem.message,
                expected=problem.expected,
                received=problem.received,
                exchange=problem.exchange,
            )


def stream_problem(ctx: Context, exchange: Exchange) -> str | None:
    """What is wrong with a 200 stream, event by event (chunk schema, [DONE] last), or None."""
    if exchange.error:
        return f"the stream did not end cleanly: {exchange.error}"
    events, problems = parse_events(exchange.body)
    if problems:
        return "SSE framing is broken: " + "; ".join(problems)
    if not events or events[-1].data != "[DONE]":
        last = events[-1].data[:200] if events else "(no event)"
        return f"the last event is not data: [DONE] but {last!r}"
    for position, event in enumerate(events[:-1]):
        if event.data == "[DONE]":
            return f"event {position} is [DONE] but more events follow"
        try:
            chunk = strict_json.loads(event.data)
        except ValueError:
            return f"event {position} is not JSON: {event.data[:200]!r}"
        if is_prompt_filter_chunk(chunk):
            continue  # Azure's filter-only chunk: no_empty_choices_unless_usage reports it
        error = ctx.validate("chat-completion-chunk", chunk)
        if error:
            return f"event {position} does not match the chat.completion.chunk schema: {error}"
    return None


def answer_problem(ctx: Context, body: dict[str, Any], exchange: Exchange) -> CheckFailed | None:
    """What keeps ``exchange`` from being a 200, schema-valid answer to valid request ``body``."""
    if exchange.status != 200:
        return CheckFailed(
            "a valid request was not answered with 200",
            expected="200 and a chat completion",
            received=str(exchange.status) if exchange.status else f"no answer ({exchange.error})",
            exchange=exchange,
        )
    streaming = bool(body.get("stream"))
    wanted = "text/event-stream" if streaming else "application/json"
    if exchange.content_type != wanted:
        return CheckFailed(
            "wrong Content-Type", expected=wanted, received=exchange.content_type, exchange=exchange
        )
    if streaming:
        problem = stream_problem(ctx, exchange)
    else:
        try:
            problem = ctx.validate("chat-completion", exchange.json())
        except ValueError as exc:
            problem = f"the body is not JSON: {exc}"
        if problem:
            problem = f"the answer does not match the chat.completion schema: {problem}"
    if problem is None:
        return None
    return CheckFailed(
        f"the answer to a valid request is not valid ({ctx.schema_level} schemas)",
        received=problem,
        exchange=exchange,
    )


def _key(body: Any) -> str:
    return json.dumps(body, sort_keys=True)


@check(group="property", severity="must")
async def prop_valid_requests(ctx: Context) -> None:
    """Valid requests drawn by hypothesis get 200 and a schema-valid answer, JSON or stream.
    Any mix of the standard parameters, short messages, max_tokens <= 16, n <= 2, streamed or
    not: each gets 200 and an answer that validates, a stream event by event with [DONE] last."""
    capabilities = ctx.endpoint.capabilities
    options: dict[str, Any] = {
        "max_n": 2 if "n" in capabilities else 1,
        "logprobs": "logprobs" in capabilities,
        "extensions": "ext" in capabilities,
    }
    requests = strategies.chat_requests(ctx.endpoint.model, **options)
    judged = JudgedRequests()

    def work(bridge: Bridge) -> None:
        @hypothesis_settings(ctx.budget.max_examples, shrink=True)
        @given(requests)
        def valid_requests_are_answered(body: dict[str, Any]) -> None:
            judged.check(_key(body), lambda: answer_problem(ctx, body, bridge.chat(body)))

        test = valid_requests_are_answered
        for body in strategies.example_requests(ctx.endpoint.model, **options):
            test = example(body)(test)  # run first, whatever hypothesis draws
        test()

    await in_thread(ctx, work)


def rejection_problem(ctx: Context, name: str, exchange: Exchange) -> CheckFailed | None:
    """What keeps ``exchange`` from being a 4xx in the error envelope, the answer to invalid
    request ``name``, or None."""
    status = exchange.status
    if status is None or not 400 <= status < 500 or status in (401, 403, 404, 429):
        return CheckFailed(
            f"an invalid request ({name}) was not rejected with 4xx",
            expected="400 or 422 with the error envelope (never 5xx, never 200)",
            received=str(status) if status else f"no answer ({exchange.error})",
            exchange=exchange,
        )
    try:
        body = exchange.json()
    except ValueError as exc:
        problem: str | None = f"the body is not JSON: {exc}"
    else:
        problem = envelope_problem(body) or ctx.validate("error", body)
    if problem is None:
        return None
    return CheckFailed(
        f"the rejection of an invalid request ({name}) is not the OpenAI error envelope",
        expected='{"error": {"message": str, "type": str, "param": str|null, "code": ...}}',
        received=problem,
        exchange=exchange,
    )


@check(group="property", severity="must")
async def prop_invalid_requests(ctx: Context) -> None:
    """Valid requests broken by one mutation get 4xx in the error envelope, never 5xx or 200.
    The mutations: an out-of-range or wrong-typed temperature, top_p, n, max_tokens, penalty,
    top_logprobs or logit_bias value; 5 stops; messages missing, empty or with a bad role."""
    judged = JudgedRequests()
    mutations = strategies.MUTATIONS
    # Every row of the table is tried: the examples are shared out among them.
    per_mutation = max(1, ctx.budget.max_examples // len(mutations))

    def work(bridge: Bridge) -> None:
        for mutation in mutations:
            broken = strategies.invalid_requests(ctx.endpoint.model, mutations=(mutation,))

            @hypothesis_settings(per_mutation, shrink=True)
            @given(broken)
            def invalid_requests_are_rejected(case: tuple[str, dict[str, Any]]) -> None:
                name, body = case
                judged.check(_key(body), lambda: rejection_problem(ctx, name, bridge.chat(body)))

            invalid_requests_are_rejected()

    await in_thread(ctx, work)
