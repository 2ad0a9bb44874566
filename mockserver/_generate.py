"""The generate source: the reference model (``reference_model.build_model(0)``, the model
``chatcompat export-model`` writes) answers, on one worker thread, and its token steps become
the neutral :class:`~mockserver._answer.Answer` that every dialect shapes.

torch is an optional extra: this module imports ``reference_model`` only when it runs it, and
:func:`require_reference_model` says clearly at startup when it cannot be imported.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from mockserver._answer import Answer, Choice, Token, Usage
from mockserver._errors import ApiError
from mockserver._template import completion_limit

__all__ = ["LiveAnswer", "ModelUnavailable", "ModelWorker", "require_reference_model"]

log = logging.getLogger("mockserver")

WEIGHTS_SEED = 0  # build_model(0): what `chatcompat export-model` writes by default
WAKE_INTERVAL = 0.005  # live streams: seconds between wake-ups of the event loop for tokens


class ModelUnavailable(RuntimeError):
    """The reference model cannot be imported (torch, the optional extra, is missing)."""


class _Cancelled(Exception):
    """The request went away or the server is stopping: generation stops early."""


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


def _stops(body: Mapping[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    return [s for s in ([stop] if isinstance(stop, str) else stop) if s]


def _picked_tool(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The tool the reference model is made to call (its rule: required = the first function
    tool, or the named one; other tool_choice objects, allowed_tools or custom, answer text)."""
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    by_name = isinstance(choice, Mapping) and choice.get("type") == "function"
    if not tools or not (choice == "required" or by_name):
        return None
    if choice == "required":
        function: Mapping[str, Any] = tools[0]["function"]
        return function
    assert isinstance(choice, Mapping)
    name = choice["function"]["name"]
    named: Mapping[str, Any] = next(t["function"] for t in tools if t["function"]["name"] == name)
    return named


def _sampling_params(body: Mapping[str, Any], vocab_size: int) -> dict[str, Any]:
    """``reference_model.SamplingParams`` fields from the request (unset: neutral values)."""
    params: dict[str, Any] = {}
    for key in (
        "temperature",
        "top_p",
        "min_p",
        "repetition_penalty",
        "frequency_penalty",
        "presence_penalty",
    ):
        if body.get(key) is not None:
            params[key] = float(body[key])
    if body.get("top_k") is not None:
        params["top_k"] = max(int(body["top_k"]), 0)
    if body.get("seed") is not None:
        params["seed"] = int(body["seed"])
    bias = {int(k): float(v) for k, v in (body.get("logit_bias") or {}).items()}
    params["logit_bias"] = {k: v for k, v in bias.items() if k < vocab_size}
    return params


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages the chat format can render: assistant tool calls get a name and arguments."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            functions = [(c.get("function") or {}) if isinstance(c, dict) else {} for c in calls]
            message = {
                **message,
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": str(f.get("name") or ""),
                            "arguments": f["arguments"]
                            if isinstance(f.get("arguments"), str)
                            else json.dumps(f.get("arguments") or {}),
                        },
                    }
                    for f in functions
                ],
            }
        out.append(dict(message))
    return out


def _logprob_entry(token_bytes: bytes, logprob: float) -> dict[str, Any]:
    return {
        "token": token_bytes.decode("utf-8", errors="replace"),
        "logprob": logprob,
        "bytes": list(token_bytes),
    }


def _entries(step: Any, tokenizer: Any, logprobs: bool) -> tuple[dict[str, Any], ...]:
    """The chat logprobs entry of one step (none for stop tokens or when not asked)."""
    if not logprobs or step.token in tokenizer.stop_ids:
        return ()
    entry = _logprob_entry(tokenizer.token_bytes(step.token), step.logprob)
    entry["top_logprobs"] = [
        _logprob_entry(tokenizer.token_bytes(t), lp) for t, lp in step.top_logprobs
    ]
    return (entry,)


def _token(step: Any, text: str, tokenizer: Any, logprobs: bool) -> Token | None:
    """The answer's token for one step shown as ``text``: None when it shows nothing (a stop
    token, or bytes held back until a character is whole) and no logprobs entry is due."""
    if not text and not (logprobs and step.token not in tokenizer.stop_ids):
        return None
    return Token(text, logprobs=_entries(step, tokenizer, logprobs))


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


class LiveAnswer:
    """A one-choice answer while the model makes it: the worker thread :meth:`put` s its
    tokens, :meth:`tokens` yields them on the event loop as they come, then :attr:`answer` is
    the whole answer (what :meth:`ModelWorker.answer` returns). The loop is woken once per
    batch of items, not per token: a loop running late takes several at a time."""

    def __init__(self, head: Answer, loop: asyncio.AbstractEventLoop) -> None:
        self.head = head  # id, created, model and what was asked for; no choices yet
        self.answer: Answer | None = None
        self.cancel = threading.Event()  # set: the generation stops
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[
            tuple[str, Any]
        ] = []  # ("token", Token) ... ("end", Answer) | ("error", exc)
        self._wake_due = False  # a wake-up is on its way to the loop for the items put
        self._next_wake = 0.0  # monotonic time before which a token does not wake the loop
        self._ready = asyncio.Event()
        self._first: list[tuple[str, Any]] = []

    def put(self, kind: str, item: Any) -> None:
        """Hand one item to the loop (from the worker thread): a token waits for the next item
        when the loop was woken less than WAKE_INTERVAL ago (each wake-up is a switch of the
        interpreter lock between the threads)."""
        now = time.monotonic()
        with self._lock:
            self._items.append((kind, item))
            wake = not self._wake_due and (kind != "token" or now >= self._next_wake)
            if wake:
                self._wake_due, self._next_wake = True, now + WAKE_INTERVAL
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
                self._loop.call_soon_threadsafe(self._ready.set)

    async def _take(self) -> list[tuple[str, Any]]:
        """Every item put since the last take (at least one)."""
        while True:
            with self._lock:
                if self._items:
                    items, self._items, self._wake_due = self._items, [], False
                    return items
            await self._ready.wait()
            self._ready.clear()

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
    """The reference model on a single worker thread (the model is not re-entrant), built
    lazily on that thread and kept for the life of the app."""

    def __init__(self, sampling: str) -> None:
        self.sampling = sampling  # the reference sampler's dialect: vllm | hf | llamacpp
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatcompat-model")
        self._model: Any = None
        self._tokenizer: Any = None
        self._closing = threading.Event()

    def _load(self) -> tuple[Any, Any]:
        """The model and tokenizer, built on first use (on the worker thread)."""
        if self._model is None:
            import torch

            from reference_model import build_model, default_tokenizer

            # Process-wide: the model is tiny, so more intra-op threads only add overhead, and
            # on a loaded machine they spin against each other (the build took 194 s instead of
            # 15 s on 2 busy cores). The weights do not depend on it (the fit runs in float64).
            torch.set_num_threads(1)
            self._tokenizer = default_tokenizer()
            self._model = build_model(WEIGHTS_SEED)
        return self._model, self._tokenizer

    def warm_up(self) -> None:
        """Start building the model in the background."""
        self._executor.submit(self._load)

    def close(self) -> None:
        """Stop a running generation, drop queued ones and join the worker thread."""
        self._closing.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def streams_live(body: Mapping[str, Any]) -> bool:
        """Whether :meth:`live` can answer ``body``: a stream of one choice without a forced
        tool call (whose arguments are known only once they are whole)."""
        return (
            body.get("stream") is True
            and int(body.get("n") or 1) == 1
            and _picked_tool(body) is None
        )

    async def live(
        self, body: Mapping[str, Any], *, completion_id: str, created: int
    ) -> LiveAnswer:
        """The answer to stream request ``body`` (see :meth:`streams_live`) while the model
        makes it; returns once the first token is out, raising what a bad request raises."""
        live = LiveAnswer(_head(body, completion_id, created), asyncio.get_running_loop())

        def run() -> None:
            try:
                answer = self._generate(
                    body, completion_id, created, live.cancel, lambda t: live.put("token", t)
                )
                live.put("end", answer)
            except _Cancelled as exc:
                log.debug("generation %s stopped: its stream was left", completion_id)
                live.put("error", exc)
            except Exception as exc:  # the request's to raise
                live.put("error", exc)

        self._executor.submit(run)
        await live.wait_first()
        return live

    async def answer(self, body: Mapping[str, Any], *, completion_id: str, created: int) -> Answer:
        """The model's answer to a validated chat completion request ``body``."""
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, self._generate, body, completion_id, created, cancel
            )
        except asyncio.CancelledError:
            cancel.set()
            raise

    def _generate(
        self,
        body: Mapping[str, Any],
        completion_id: str,
        created: int,
        cancel: threading.Event,
        on_token: Callable[[Token], None] | None = None,
    ) -> Answer:
        """The whole answer to ``body``; with ``on_token`` (one choice, no forced tool call),
        each of its tokens is also given to it as the model makes it."""
        from reference_model import GenerationRequest, SamplingParams, encode_dialog, generate

        model, tokenizer = self._load()
        penalty = body.get("repetition_penalty")
        if penalty is not None and not penalty > 0:  # vLLM and HF refuse it; it divides by 0
            raise ApiError(
                400,
                f"repetition_penalty must be greater than zero, got {penalty}.",
                param="repetition_penalty",
            )
        request = GenerationRequest(
            messages=_messages(body["messages"]),
            tools=body.get("tools"),
            tool_choice=body.get("tool_choice"),
            response_format=body.get("response_format"),
            sampling=SamplingParams(**_sampling_params(body, tokenizer.vocab_size)),
            max_tokens=completion_limit(dict(body)),
            stop=_stops(body),
            n=int(body.get("n") or 1),
            top_logprobs=int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0,
            dialect=self.sampling,
        )
        prompt = len(encode_dialog(tokenizer, request.messages, request.tools))
        context = int(model.args.max_seq_len)
        if prompt >= context:
            raise ApiError(
                400,
                f"This model's maximum context length is {context} tokens. However, your "
                f"messages resulted in {prompt} tokens. Please reduce the length of the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        generation = generate(request, model=model, tokenizer=tokenizer)
        steps: dict[int, list[Any]] = {i: [] for i in range(request.n)}
        logprobs = bool(body.get("logprobs"))
        for step in generation:
            if cancel.is_set() or self._closing.is_set():
                raise _Cancelled
            steps[step.index].append(step)
            token = None if on_token is None else _token(step, step.text, tokenizer, logprobs)
            if token is not None and on_token is not None:
                on_token(token)
        tool = _picked_tool(body)
        choices = tuple(
            self._tool_choice(index, s, tool, tokenizer, logprobs)
            if tool is not None
            else self._text_choice(index, s, tokenizer, logprobs)
            for index, s in steps.items()
        )
        usage = Usage(generation.usage.prompt_tokens, generation.usage.completion_tokens)
        return replace(_head(body, completion_id, created), choices=choices, usage=usage)

    def _text_choice(
        self,
        index: int,
        steps: Sequence[Any],
        tokenizer: Any,
        logprobs: bool,
        texts: Sequence[str] | None = None,
    ) -> Choice:
        """A text choice: each step's text (or ``texts``, one per step) and logprobs entry."""
        texts = texts if texts is not None else [step.text for step in steps]
        made = (_token(s, text, tokenizer, logprobs) for s, text in zip(steps, texts, strict=True))
        tokens = tuple(token for token in made if token is not None)
        finish = (steps[-1].finish_reason if steps else None) or "length"
        return Choice(index, tokens, finish)

    def _tool_choice(
        self,
        index: int,
        steps: Sequence[Any],
        tool: Mapping[str, Any],
        tokenizer: Any,
        logprobs: bool,
    ) -> Choice:
        """One call streamed as OpenAI does: a head fragment (id, name, empty arguments), then
        the arguments in the pieces the model's tokens wrote them. Output cut by the token limit
        before its arguments are whole JSON is no call: it is returned as the text it is, as
        vLLM's tool parsers do with output they cannot parse."""
        name = str(tool["name"])
        head = '{"name": ' + json.dumps(name) + ', "parameters": '
        last: Any = steps[-1] if steps else None
        finish = (last.finish_reason if last else None) or "length"
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces = [decoder.decode(tokenizer.token_bytes(s.token)) for s in steps]
        text = "".join(pieces)
        done = last is not None and last.tool_calls
        arguments = last.tool_calls[0].arguments if done else text[len(head) :]
        if not _is_json(arguments):
            return self._text_choice(index, steps, tokenizer, logprobs, pieces)
        start, end = len(head), len(head) + len(arguments)
        call = {
            "index": 0,
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        tokens = [Token(tool_calls=(call,))]
        offset = 0
        for step, piece in zip(steps, pieces, strict=True):
            low, high = max(offset, start), min(offset + len(piece), end)
            offset += len(piece)
            if low < high:
                fragment = {"index": 0, "function": {"arguments": text[low:high]}}
                entries = _entries(step, tokenizer, logprobs)
                tokens.append(Token(tool_calls=(fragment,), logprobs=entries))
        return Choice(index, tuple(tokens), finish)
