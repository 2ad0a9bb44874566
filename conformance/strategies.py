"""Hypothesis strategies for chat-completion requests: valid ones, bounded in tokens, and
invalid ones made by one mutation of a valid request.

Valid requests use the parameters of OpenAI's CreateChatCompletionRequest (openai/openai-openapi
``openapi.yaml``; schemas/strict/chat-completion-request.json) with values every compatible server
should accept: ``max_tokens`` (or ``max_completion_tokens``) <= 16, ``n`` <= 2, short messages,
``top_p`` in (0, 1] (vLLM rejects 0), ``stream_options`` only with ``stream``, ``top_logprobs``
only with ``logprobs``. Every request they make validates against the compatible request schema;
every mutation in :data:`MUTATIONS` makes it invalid under that schema
(tests/conformance/test_strategies.py checks both).
"""

from __future__ import annotations

import copy
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

__all__ = [
    "MUTATIONS",
    "Mutation",
    "chat_requests",
    "example_requests",
    "invalid_requests",
    "logit_biases",
    "messages",
    "stops",
    "texts",
]

Body = dict[str, Any]
_ALPHABET = string.ascii_letters + string.digits + " .,!?'-" + "éüñßçøæ"  # short, printable
# logit_bias keys below this are token ids of every byte-level vocabulary (its 256 byte tokens):
# a valid request cannot depend on the vocabulary's size, which the suite does not know (vLLM
# refuses an id at or above it with 400, rightly: a 512-token model refused 805).
_SAFE_TOKEN_IDS = 256


def texts(*, max_size: int = 40) -> SearchStrategy[str]:
    """Short printable text that is not blank."""
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    return st.text(_ALPHABET, min_size=1, max_size=max_size).filter(lambda s: s.strip() != "")


def _user_contents() -> SearchStrategy[Any]:
    parts = st.lists(
        st.builds(lambda t: {"type": "text", "text": t}, texts()), min_size=1, max_size=2
    )
    return texts() | parts


def messages(*, max_size: int = 3) -> SearchStrategy[list[dict[str, Any]]]:
    """A short conversation: an optional system message, alternating user and assistant turns,
    ending with a user turn."""
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")

    @st.composite
    def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
        turns = draw(st.integers(0, (max_size - 1) // 2))  # earlier user/assistant pairs
        conversation: list[dict[str, Any]] = []
        if 1 + 2 * turns < max_size and draw(st.booleans()):
            conversation.append({"role": "system", "content": draw(texts())})
        for _ in range(turns):
            conversation.append({"role": "user", "content": draw(_user_contents())})
            conversation.append({"role": "assistant", "content": draw(texts())})
        conversation.append({"role": "user", "content": draw(_user_contents())})
        return conversation

    return conversations()


def stops() -> SearchStrategy[str | list[str]]:
    """A stop sequence, or a list of 1 to 4 of them."""
    return texts(max_size=8) | st.lists(texts(max_size=8), min_size=1, max_size=4)


def logit_biases() -> SearchStrategy[dict[str, int]]:
    """1 to 3 token ids (as strings, below 256: every byte-level vocabulary has them) mapped to
    biases in [-100, 100]."""
    keys = st.integers(0, _SAFE_TOKEN_IDS - 1).map(str)
    return st.dictionaries(keys, st.integers(-100, 100), min_size=1, max_size=3)


def _floats(low: float, high: float) -> SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


# The optional parameters with values that every compatible server must accept.
_OPTIONAL: dict[str, SearchStrategy[Any]] = {
    "temperature": _floats(0.0, 2.0),
    "top_p": _floats(0.05, 1.0),
    "presence_penalty": _floats(-2.0, 2.0),
    "frequency_penalty": _floats(-2.0, 2.0),
    "stop": stops(),
    "seed": st.integers(0, 2**31 - 1),
    "logit_bias": logit_biases(),
    "user": texts(max_size=16),
    "response_format": st.just({"type": "text"}),
}
_EXTENSIONS: dict[str, SearchStrategy[Any]] = {  # provider extras ("ext" capability)
    "top_k": st.integers(1, 50),
    "min_p": _floats(0.0, 1.0),
    "repetition_penalty": _floats(0.5, 2.0),
}


def chat_requests(
    model: str,
    *,
    max_tokens: int = 16,
    max_n: int = 2,
    logprobs: bool = True,
    extensions: bool = False,
    stream: bool | None = None,
) -> SearchStrategy[Body]:
    """Valid chat requests for ``model``: short messages, at most ``max_tokens`` tokens per
    choice, at most ``max_n`` choices, logprobs only when ``logprobs``, top_k / min_p /
    repetition_penalty only when ``extensions``; ``stream`` True or False fixes streaming
    (None: either)."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    if not 1 <= max_tokens <= 4096:
        raise ValueError(f"max_tokens must be in [1, 4096], got {max_tokens}")
    if not 1 <= max_n <= 128:
        raise ValueError(f"max_n must be in [1, 128], got {max_n}")

    @st.composite
    def requests(draw: st.DrawFn) -> Body:
        body: Body = {"model": model, "messages": draw(messages())}
        limit_key = draw(st.sampled_from(("max_tokens", "max_completion_tokens")))
        body[limit_key] = draw(st.integers(1, max_tokens))
        optional = {**_OPTIONAL, **(_EXTENSIONS if extensions else {})}
        for key in sorted(optional):  # each one half of the time: many combinations
            if draw(st.booleans()):
                body[key] = draw(optional[key])
        if max_n > 1 and draw(st.booleans()):
            body["n"] = draw(st.integers(1, max_n))
        streaming = draw(st.booleans()) if stream is None else stream
        if streaming:
            body["stream"] = True
            if draw(st.booleans()):  # stream_options only with stream
                body["stream_options"] = {"include_usage": draw(st.booleans())}
        elif draw(st.booleans()):
            body["stream"] = False
        if logprobs and draw(st.booleans()):
            body["logprobs"] = True
            if draw(st.booleans()):  # top_logprobs only with logprobs
                body["top_logprobs"] = draw(st.integers(0, 5))
        return body

    return requests()


def example_requests(
    model: str, *, max_n: int = 2, logprobs: bool = True, extensions: bool = False
) -> list[Body]:
    """Two hand-written valid requests that use most parameters at once, non-stream and
    stream; checks run them before the drawn ones, so that every run covers them."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    body: Body = {
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Say hello."}]},
        ],
        "max_tokens": 16,
        "temperature": 0.7,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.5,
        "stop": ["\n\n", "END"],
        "seed": 7,
        "logit_bias": {"100": -1},
        "user": "chatcompat",
        "response_format": {"type": "text"},
    }
    if max_n > 1:
        body["n"] = 2
    if logprobs:
        body.update(logprobs=True, top_logprobs=2)
    if extensions:
        body.update(top_k=40, min_p=0.05, repetition_penalty=1.1)
    return [body, {**body, "stream": True, "stream_options": {"include_usage": True}}]


@dataclass(frozen=True)
class Mutation:
    """One way to break a valid request: ``apply(body, value)`` with a drawn ``value``."""

    name: str
    values: SearchStrategy[Any]
    apply: Callable[[Body, Any], Body]


def _setting(key: str, **also: Any) -> Callable[[Body, Any], Body]:
    return lambda body, value: {**body, **also, key: value}


def _without(key: str) -> Callable[[Body, Any], Body]:
    return lambda body, _: {k: v for k, v in body.items() if k != key}


def _wrong_types(*, numbers: bool = True) -> SearchStrategy[Any]:
    """Values of the wrong JSON type for a number (or, with ``numbers`` False, an integer)."""
    wrong = st.sampled_from(["hot", "", "1", True, [], {}])  # not null: most fields allow it
    return wrong if numbers else wrong | _floats(-50.0, 50.0).filter(lambda x: x != int(x))


def _above(limit: float) -> SearchStrategy[float]:
    return st.floats(min_value=limit, exclude_min=True, max_value=1e6, allow_nan=False)


def _below(limit: float) -> SearchStrategy[float]:
    return st.floats(min_value=-1e6, max_value=limit, exclude_max=True, allow_nan=False)


def _int_outside(low: int, high: int | None) -> SearchStrategy[int]:
    below = st.integers(-(10**6), low - 1)
    return below if high is None else below | st.integers(high + 1, 10**6)


def _set_role(body: Body, role: Any) -> Body:
    first, *rest = copy.deepcopy(body["messages"])
    return {**body, "messages": [{**first, "role": role}, *rest]}


def _set_messages(body: Body, value: Any) -> Body:
    return {**body, "messages": value}


# Each mutation leaves a request invalid under the compatible request schema, and every
# compatible server must refuse it (a MUST). Five stop strings (maxItems 4) are left out: refusing
# them is a SHOULD (stop_over_four_refused); vLLM and llama.cpp accept them.
MUTATIONS: tuple[Mutation, ...] = (
    Mutation("temperature out of [0, 2]", _above(2.0) | _below(0.0), _setting("temperature")),
    Mutation("temperature wrong type", _wrong_types(), _setting("temperature")),
    Mutation("top_p out of [0, 1]", _above(1.0) | _below(0.0), _setting("top_p")),
    Mutation("top_p wrong type", _wrong_types(), _setting("top_p")),
    Mutation("n out of [1, 128]", _int_outside(1, 128), _setting("n")),
    Mutation("n wrong type", _wrong_types(numbers=False), _setting("n")),
    Mutation("max_tokens wrong type", _wrong_types(numbers=False), _setting("max_tokens")),
    Mutation(
        "presence_penalty out of [-2, 2]", _above(2.0) | _below(-2.0), _setting("presence_penalty")
    ),
    Mutation(
        "frequency_penalty out of [-2, 2]",
        _above(2.0) | _below(-2.0),
        _setting("frequency_penalty"),
    ),
    Mutation(
        "top_logprobs out of [0, 20]",
        _int_outside(0, 20),
        _setting("top_logprobs", logprobs=True),
    ),
    Mutation(
        "logit_bias value wrong type",
        _wrong_types(numbers=False).map(lambda v: {"100": v}),
        _setting("logit_bias"),
    ),
    Mutation("messages missing", st.none(), _without("messages")),
    Mutation(
        "messages empty or not a list",
        st.sampled_from([[], "hello", {}, None, 1]),
        _set_messages,
    ),
    Mutation(
        "message role unknown or wrong type",
        st.sampled_from(["robot", "", "USER", 123, None]),
        _set_role,
    ),
)


def invalid_requests(
    model: str, *, mutations: tuple[Mutation, ...] = MUTATIONS
) -> SearchStrategy[tuple[str, Body]]:
    """(mutation name, request): a valid non-stream request for ``model`` broken by one of
    ``mutations``."""
    if not mutations:
        raise ValueError("mutations must not be empty")
    base = chat_requests(model, max_n=1, logprobs=False, stream=False)

    @st.composite
    def broken(draw: st.DrawFn) -> tuple[str, Body]:
        mutation = draw(st.sampled_from(mutations))
        return mutation.name, mutation.apply(draw(base), draw(mutation.values))

    return broken()
