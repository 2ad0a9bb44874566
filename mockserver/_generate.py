"""The generate source: the reference model (``reference_model.build_model(0)``, the model
``chatcompat export-model`` writes) answers, on one worker thread, and its token steps become
the neutral :class:`~mockserver._answer.Answer` that every flavour shapes.

torch is an optional extra: this module imports ``reference_model`` only when it runs it, and
:func:`require_reference_model` says clearly at startup when it cannot be imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from chatcompat.request_rules import check_context_length, forced_tools
from mockserver._answer import Answer, Choice, Token, Usage
from mockserver._errors import ApiError
from mockserver._model_cache import LoadedModel, load_model
from mockserver._round_robin import RoundRobin, Stopped

if TYPE_CHECKING:
    from reference_model import Dialect, Step, Tokenizer, Transformer

__all__ = ["LiveAnswer", "ModelUnavailable", "ModelWorker", "require_reference_model"]

log = logging.getLogger("mockserver")

WEIGHTS_SEED = 0  # build_model(0): what `chatcompat export-model` writes by default
WAKE_INTERVAL = 0.005  # live streams: seconds between wake-ups of the event loop for tokens
GONE_POLL = 0.25  # whole answers: seconds between looks at whether the client is still there
CLOSE_WAIT = 2.0  # seconds close() waits for the worker thread


class ModelUnavailable(RuntimeError):
    """The reference model cannot be imported (torch, the optional extra, is missing)."""


def require_reference_model() -> None:
    """Raise :class:`ModelUnavailable` with install advice unless ``reference_model`` imports."""
    try:
        import reference_model  # noqa: F401
    except ImportError as exc:
        raise ModelUnavailable(
            "generate mode (--mode generate, --on-miss generate) needs the reference model, "
            f"which could not be imported ({exc}). Install the optional extra with pinned torch: "
            "pip install -c constraints.txt 'chatcompat[reference]'"
        ) from exc


def _logprob_entry(token_bytes: bytes, logprob: float) -> dict[str, Any]:
    return {
        "token": token_bytes.decode("utf-8", errors="replace"),
        "logprob": logprob,
        "bytes": list(token_bytes),
    }


def _entries(step: Step, tokenizer: Tokenizer, logprobs: bool) -> tuple[dict[str, Any], ...]:
    """The chat logprobs entry of one step (none for stop tokens or when not asked)."""
    if not logprobs or step.token in tokenizer.stop_ids:
        return ()
    entry = _logprob_entry(tokenizer.token_bytes(step.token), step.logprob)
    entry["top_logprobs"] = [
        _logprob_entry(tokenizer.token_bytes(t), lp) for t, lp in step.top_logprobs
    ]
    return (entry,)


def _token(step: Step, tokenizer: Tokenizer, logprobs: bool) -> Token | None:
    """The answer's token for one step of text: None when it shows nothing (a stop token, or
    bytes held back until a character is whole) and no logprobs entry is due."""
    if not step.text and not (logprobs and step.token not in tokenizer.stop_ids):
        return None
    return Token(step.text, logprobs=_entries(step, tokenizer, logprobs))


def _text_choice(index: int, steps: Sequence[Step], tokenizer: Tokenizer, logprobs: bool) -> Choice:
    """A text choice: each step's text and logprobs entry."""
    made = (_token(step, tokenizer, logprobs) for step in steps)
    tokens = tuple(token for token in made if token is not None)
    return Choice(index, tokens, (steps[-1].finish_reason if steps else None) or "length")


def _choice(index: int, steps: Sequence[Step], tokenizer: Tokenizer, logprobs: bool) -> Choice:
    """Choice ``index`` of the steps: the calls they wrote when they finish with "tool_calls",
    else their text. Calls cut by the token limit are no calls: the choice is the text the
    steps wrote, as vLLM's tool parsers return output they cannot parse."""
    if steps and steps[-1].finish_reason == "tool_calls":
        return _calls_choice(index, steps, tokenizer, logprobs)
    return _text_choice(index, steps, tokenizer, logprobs)


def _calls_choice(
    index: int, steps: Sequence[Step], tokenizer: Tokenizer, logprobs: bool
) -> Choice:
    """The calls the steps wrote, streamed as OpenAI does: per call a head fragment (id, name,
    empty arguments), then the arguments in the pieces the model's tokens wrote them (with
    their logprobs entries)."""
    tokens, opened = [], -1
    for step in steps:
        piece = step.call
        assert piece is not None, "a step of a forced call says which call it writes"
        if piece.index > opened:
            opened = piece.index
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            function = {"name": piece.name, "arguments": ""}
            head = {"index": piece.index, "id": call_id, "type": "function", "function": function}
            tokens.append(Token(tool_calls=(head,)))
        if piece.arguments:
            fragment = {"index": piece.index, "function": {"arguments": piece.arguments}}
            entries = _entries(step, tokenizer, logprobs)
            tokens.append(Token(tool_calls=(fragment,), logprobs=entries))
    return Choice(index, tuple(tokens), "tool_calls")


def _head(body: Mapping[str, Any], completion_id: str, created: int) -> Answer:
    """The answer to ``body`` before the model has made any of it: its id, time, model and
    what was asked for (logprobs, usage in the stream); no choices, no usage yet."""
    return Answer(
        id=completion_id,
        created=created,
        model=body["model"],
        choices=(),
        usage=Usage(0, 0),
        logprobs=bool(body.get("logprobs")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
    )


class LoopWakes:
    """The wake-ups of one event loop for the live answers one worker thread makes: at most
    one per WAKE_INTERVAL for tokens, whichever answers they are for, since each wake-up is a
    switch of the interpreter lock between the threads (and answers taking turns put tokens
    in turn); an answer's first item and its end wake the loop at once. A wake-up wakes every
    answer with items waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._waiting: set[LiveAnswer] = set()  # answers with items the loop has not been told
        self._due = False  # a wake-up is on its way to the loop
        self._next = 0.0  # monotonic time before which a token does not wake the loop

    def ask(self, live: LiveAnswer, *, urgent: bool) -> None:
        """``live`` has items for the loop (from the worker thread): wake the loop now when
        ``urgent`` or when it was woken WAKE_INTERVAL ago or more, else with the next item."""
        now = time.monotonic()
        with self._lock:
            self._waiting.add(live)
            wake = not self._due and (urgent or now >= self._next)
            if wake:
                self._due, self._next = True, now + WAKE_INTERVAL
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
                self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._lock:
            waiting, self._waiting, self._due = self._waiting, set(), False
        for live in waiting:
            live.ready.set()


class LiveAnswer:
    """A one-choice answer while the model makes it: the worker thread :meth:`put` s its
    tokens, :meth:`tokens` yields them on the event loop as they come, then :attr:`answer` is
    the whole answer (what :meth:`ModelWorker.answer` returns). The loop is woken through
    ``wakes`` (:class:`LoopWakes`), not per token: a loop running late takes several at a
    time."""

    def __init__(self, head: Answer, wakes: LoopWakes) -> None:
        self.head = head  # id, created, model and what was asked for; no choices yet
        self.answer: Answer | None = None
        self.cancel = threading.Event()  # set: the generation stops
        self.ready = asyncio.Event()  # set by a wake-up: items may be waiting
        self._wakes = wakes
        self._lock = threading.Lock()
        # ("token", Token) ... ("end", Answer) | ("error", exc)
        self._items: list[tuple[str, Any]] = []
        self._started = False  # an item has been put: the answer has started
        self._first: list[tuple[str, Any]] = []

    def put(self, kind: str, item: Any) -> None:
        """Hand one item to the loop (from the worker thread); a token after the first may
        wait for the next item's wake-up (see :class:`LoopWakes`)."""
        with self._lock:
            self._items.append((kind, item))
            first, self._started = not self._started, True
        self._wakes.ask(self, urgent=first or kind != "token")

    def finish(self, future: Future[Answer]) -> None:
        """Hand the end of the generation to the loop: its answer, or what it raised (from
        the worker thread, when ``future`` is done)."""
        exc = None if future.cancelled() else future.exception()
        if exc is None:
            self.put("end", future.result())
        else:
            self.put("error", exc)

    async def _take(self) -> list[tuple[str, Any]]:
        """Every item put since the last take (at least one)."""
        while True:
            with self._lock:
                if self._items:
                    items, self._items = self._items, []
                    return items
            await self.ready.wait()
            self.ready.clear()

    async def wait_first(self) -> None:
        """Wait for the first token (or the end); raise the request's error instead."""
        self._first = await self._take()
        if self._first[0][0] == "error":
            raise self._first[0][1]

    async def tokens(self) -> AsyncIterator[list[Token]]:
        """The tokens as the model makes them: each time, those made since the last time (one
        when the reader keeps up). The generation stops if this is not run to its end."""
        items, self._first = self._first or await self._take(), []
        end: tuple[str, Any] | None = None
        try:
            while True:
                batch = [item for kind, item in items if kind == "token"]
                end = next(((kind, item) for kind, item in items if kind != "token"), None)
                if batch:
                    yield batch
                if end is not None:
                    break
                items = await self._take()
        finally:
            if end is None:
                self.cancel.set()  # the stream was left: stop generating
        if end[0] == "error":
            raise end[1]
        self.answer = end[1]


class ModelWorker:
    """The reference model on one worker thread (the model is not re-entrant), built lazily on
    that thread and kept for the life of the app. ``context_length`` (tokens; None: the
    model's own) bounds prompt + completion together with the model's context.

    Scheduling (:class:`~mockserver._round_robin.RoundRobin`): the generations in progress take
    turns, one token each, round-robin; a new request joins at the end of the round, and the
    ``n`` choices of a request are made one after the other in its turns. So a request's share
    of the model grows with neither ``n`` nor ``max_tokens``: one large request slows each
    small one by one token per turn instead of holding it up until its end. Each generation
    keeps its own KV caches and seeded generators, so its tokens are those it makes alone.
    There is no budget beyond the context: a request may ask for up to ``n`` x the context.

    A generation stops at its next turn once its client has left: a live stream's write fails,
    a whole answer's connection is seen closed (looked at every ``GONE_POLL`` seconds); and
    every generation stops when the worker closes."""

    def __init__(self, sampling: str, *, context_length: int | None = None) -> None:
        self.sampling = sampling  # the reference sampler's dialect: vllm | hf | llamacpp
        self.context_length = context_length
        self.ready = threading.Event()  # set once the model can answer
        self.loaded: LoadedModel | None = None  # how the model came (cache or build), once ready
        self._turns = RoundRobin("chatcompat-model")
        self._wakes: LoopWakes | None = None  # of the loop that awaits the live answers
        self._model: Transformer | None = None
        self._tokenizer: Tokenizer | None = None
        self._started = time.monotonic()
        self._wait_said = False  # the log said a request waits for the model

    def _say_waiting(self) -> None:
        """Log (once) that requests wait for the model while it loads."""
        if not self.ready.is_set() and not self._wait_said:
            self._wait_said = True
            log.info(
                "requests wait for the reference model, loading for %.0f s (GET /health "
                "says 200 once it can answer)",
                time.monotonic() - self._started,
            )

    @property
    def context(self) -> int:
        """Tokens prompt and completion share: the model's ``max_seq_len``, or
        ``context_length`` when smaller (what :meth:`answer` refuses past)."""
        from reference_model import ModelArgs

        window = ModelArgs().max_seq_len
        return window if self.context_length is None else min(window, self.context_length)

    def _load(self) -> tuple[Transformer, Tokenizer]:
        """The model and tokenizer, read from the disk cache or built on first use (on the
        worker thread); logs when they are ready and how long that took."""
        if self._model is None or self._tokenizer is None:
            import torch

            from reference_model import default_tokenizer

            # Process-wide: the model is tiny, so more intra-op threads only add overhead, and
            # on a loaded machine they spin against each other (the build took 194 s instead of
            # 15 s on 2 busy cores). The weights do not depend on it (the fit runs in float64).
            torch.set_num_threads(1)
            self._tokenizer = default_tokenizer()
            self.loaded = load_model(WEIGHTS_SEED)
            self._model = self.loaded.model
            log.info(
                "the reference model is ready %.1f s after the server started: %s",
                time.monotonic() - self._started,
                _how(self.loaded),
            )
            self.ready.set()
        return self._model, self._tokenizer

    def _building(self) -> Generator[None, None, None]:
        """The model build as a job of one piece."""
        try:
            self._load()
        except Exception:  # the requests that need it raise it again, each in its answer
            log.exception("the reference model could not be built")
        yield from ()

    def warm_up(self) -> None:
        """Start building the model in the background (:attr:`ready` is set once done)."""
        self._started = time.monotonic()
        self._turns.submit(self._building())

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Stop every generation at its next token and wait up to ``timeout`` seconds for the
        worker thread (a model build in progress runs on to its end: the thread ends then)."""
        if not self._turns.close(timeout):
            log.debug("the model thread is still building the model; it ends after that")

    @staticmethod
    def streams_live(body: Mapping[str, Any]) -> bool:
        """Whether :meth:`live` can answer ``body``: a stream of one choice without forced
        tool calls (whose arguments are known only once they are whole)."""
        forced = forced_tools(
            body.get("tools"), body.get("tool_choice"), body.get("parallel_tool_calls")
        )
        return body.get("stream") is True and int(body.get("n") or 1) == 1 and not forced

    async def live(
        self, body: Mapping[str, Any], *, completion_id: str, created: int
    ) -> LiveAnswer:
        """The answer to stream request ``body`` (see :meth:`streams_live`) while the model
        makes it; returns once the first token is out, raising what a bad request raises
        (an ApiError 503 when the server stops first)."""
        self._say_waiting()
        loop = asyncio.get_running_loop()
        if self._wakes is None or self._wakes.loop is not loop:
            self._wakes = LoopWakes(loop)
        live = LiveAnswer(_head(body, completion_id, created), self._wakes)
        work = self._generate(body, completion_id, created, lambda t: live.put("token", t))
        future = self._turns.submit(work, live.cancel)
        future.add_done_callback(partial(_log_stop, completion_id, live.cancel))
        future.add_done_callback(live.finish)
        try:
            await live.wait_first()
        except Stopped:
            raise _stopping() from None
        return live

    async def answer(
        self,
        body: Mapping[str, Any],
        *,
        completion_id: str,
        created: int,
        client_left: Callable[[], bool] | None = None,
    ) -> Answer:
        """The model's answer to a validated chat completion request ``body``; raises
        ``chatcompat.request_rules.RuleViolation`` when the prompt and the completion limit do
        not fit in the context (see ``check_context_length``), ConnectionResetError when
        ``client_left()`` says the client has gone first (asked every ``GONE_POLL`` seconds),
        an ApiError 503 when the server stops first. A cancelled caller stops it too."""
        self._say_waiting()
        cancel = threading.Event()
        future = self._turns.submit(self._generate(body, completion_id, created), cancel)
        future.add_done_callback(partial(_log_stop, completion_id, cancel))
        waiting = asyncio.wrap_future(future)
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=GONE_POLL)
                if done:
                    return waiting.result()
                if client_left is not None and client_left():
                    raise ConnectionResetError("the client left before its answer was made")
        except Stopped:
            raise _stopping() from None
        finally:
            if not waiting.done():  # left or cancelled: stop generating
                cancel.set()
                waiting.cancel()

    def _generate(
        self,
        body: Mapping[str, Any],
        completion_id: str,
        created: int,
        on_token: Callable[[Token], None] | None = None,
    ) -> Generator[None, None, Answer]:
        """The whole answer to ``body``, made one token per ``next`` (a job of the round); with
        ``on_token`` (one choice, no forced tool call), each of its tokens is also given to it
        as the model makes it."""
        from reference_model import generate, generation_request

        model, tokenizer = self._load()
        dialect = cast("Dialect", self.sampling)
        request = generation_request(body, vocab_size=tokenizer.vocab_size, dialect=dialect)
        generation = generate(
            request, model=model, tokenizer=tokenizer, context_length=self.context_length
        )
        check_context_length(generation.prompt_tokens, request.max_tokens, generation.context)
        steps: dict[int, list[Step]] = {i: [] for i in range(request.n)}
        logprobs = bool(body.get("logprobs"))
        for step in generation:
            steps[step.index].append(step)
            token = None if on_token is None else _token(step, tokenizer, logprobs)
            if token is not None and on_token is not None:
                on_token(token)
            yield  # the end of this request's turn
        choices = tuple(_choice(index, s, tokenizer, logprobs) for index, s in steps.items())
        usage = Usage(generation.prompt_tokens, generation.completion_tokens)
        return replace(_head(body, completion_id, created), choices=choices, usage=usage)


def _how(loaded: LoadedModel) -> str:
    """How the model came, for the log."""
    if loaded.source == "cache":
        return f"read from the cache {loaded.path} in {loaded.seconds:.1f} s"
    kept = "not cached" if loaded.path is None else f"cached in {loaded.path}"
    return f"built in {loaded.seconds:.1f} s, {kept}"


def _stopping() -> ApiError:
    """The answer to a request whose generation the server's stop ended."""
    return ApiError(503, "The server is stopping; send the request again.")


def _log_stop(completion_id: str, cancel: threading.Event, future: Future[Any]) -> None:
    """Say (at debug level) why the generation of ``future`` stopped early, if it did."""
    if not future.cancelled() and isinstance(future.exception(), Stopped):
        why = "its client left" if cancel.is_set() else "the server is stopping"
        log.debug("generation %s stopped: %s", completion_id, why)
