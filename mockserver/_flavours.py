"""Flavours: how real servers shape the same answer (the pipeline's "shape" stage). Each is a
row of data (fields and flags) read by two functions, :func:`completion_body` and
:func:`stream_chunks`; :class:`LiveChunks` shapes a stream whose tokens come while the model
makes them into the chunks :func:`stream_chunks` gives the whole answer.

A flavour is the response shape of a server (openai, vllm, llamacpp, novita, azure); the
sampling semantics of generate mode are another thing, the flavour's ``sampling`` default."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mockserver._answer import Answer, Choice, Token

__all__ = [
    "FLAVOURS",
    "ChoiceChunks",
    "Flavour",
    "LiveChunks",
    "completion_body",
    "stream_chunks",
    "stream_closing",
    "stream_opening",
]

_FILTERS_NOVITA = {
    "hate": {"filtered": False},
    "self_harm": {"filtered": False},
    "sexual": {"filtered": False},
    "violence": {"filtered": False},
    "jailbreak": {"filtered": False, "detected": False},
    "profanity": {"filtered": False, "detected": False},
}
_SAFE = {"filtered": False, "severity": "safe"}
_FILTERS_AZURE = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}


def _llamacpp_timings(answer: Answer) -> dict[str, Any]:
    # llama.cpp reports timings with every final answer; these are nominal, not measured.
    prompt, predicted = answer.usage.prompt_tokens, answer.usage.completion_tokens
    return {
        "timings": {
            "prompt_n": prompt,
            "prompt_ms": prompt * 0.5,
            "prompt_per_token_ms": 0.5,
            "prompt_per_second": 2000.0,
            "predicted_n": predicted,
            "predicted_ms": predicted * 10.0,
            "predicted_per_token_ms": 10.0,
            "predicted_per_second": 100.0,
        }
    }


def _azure_prompt_filters(answer: Answer) -> dict[str, Any]:
    return {
        "prompt_filter_results": [
            {"prompt_index": 0, "content_filter_results": copy.deepcopy(_FILTERS_AZURE)}
        ]
    }


def _nothing(answer: Answer) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Flavour:
    name: str
    sampling: str  # the reference sampler's semantics in generate mode: vllm | hf | llamacpp
    doc: str
    system_fingerprint: str | None = None  # None: the key is left out
    top_level: dict[str, Any] = field(default_factory=dict)  # extra keys of every object
    message_extra: dict[str, Any] = field(default_factory=dict)  # extra keys of a message
    choice_extra: dict[str, Any] = field(default_factory=dict)  # extra keys of every choice
    usage_details: dict[str, Any] | None = None  # *_tokens_details; None: both null
    usage_details_key: bool = True  # False: the *_tokens_details keys are left out
    role_delta: dict[str, Any] = field(default_factory=lambda: {"role": "assistant"})
    finish_delta: dict[str, Any] = field(default_factory=dict)  # delta of the finish chunk
    finish_on_last_token: bool = False  # finish_reason rides on the last content chunk
    logprobs_key: bool = True  # choices carry "logprobs": null when not asked
    final_extra: Callable[[Answer], dict[str, Any]] = _nothing  # keys of the last object
    prompt_filter_chunk: bool = False  # a first chunk with choices [] and prompt filters


_OPENAI_DETAILS = {
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

_TABLE = (
    Flavour(
        "openai",
        "vllm",
        "api.openai.com: refusal and annotations in messages, token details, service_tier, "
        "a separate finish chunk with an empty delta.",
        system_fingerprint="fp_chatcompat",
        top_level={"service_tier": "default"},
        message_extra={"refusal": None, "annotations": []},
        usage_details=_OPENAI_DETAILS,
        role_delta={"role": "assistant", "content": "", "refusal": None},
    ),
    Flavour(
        "vllm",
        "vllm",
        "vLLM's OpenAI server: stop_reason per choice, reasoning_content and tool_calls [] in "
        "messages, a finish chunk whose delta is an empty content.",
        message_extra={"reasoning_content": None, "tool_calls": []},
        choice_extra={"stop_reason": None},
        top_level={"prompt_logprobs": None},
        usage_details={"prompt_tokens_details": None},
        role_delta={"role": "assistant", "content": ""},
        finish_delta={"content": ""},
    ),
    Flavour(
        "llamacpp",
        "llamacpp",
        "llama.cpp's llama-server: build fingerprint, content null in the role chunk, timings "
        "on the last object, no logprobs key unless asked.",
        system_fingerprint="b6000-chatcompat",
        usage_details_key=False,
        role_delta={"role": "assistant", "content": None},
        logprobs_key=False,
        final_extra=_llamacpp_timings,
    ),
    Flavour(
        "novita",
        "vllm",
        "The seed provider (its documented examples are in mockserver/data/seed): "
        "content_filter_results in every choice, null token "
        "details, empty system_fingerprint, finish_reason on the last content chunk.",
        system_fingerprint="",
        choice_extra={"content_filter_results": _FILTERS_NOVITA},
        usage_details={"prompt_tokens_details": None, "completion_tokens_details": None},
        finish_on_last_token=True,
        logprobs_key=False,
    ),
    Flavour(
        "azure",
        "vllm",
        "Azure OpenAI: prompt_filter_results, content_filter_results per choice, and a first "
        "stream chunk with empty choices that carries only the prompt filters.",
        system_fingerprint="fp_chatcompat",
        message_extra={"refusal": None},
        choice_extra={"content_filter_results": _FILTERS_AZURE},
        usage_details=_OPENAI_DETAILS,
        role_delta={"role": "assistant", "content": "", "refusal": None},
        final_extra=_nothing,
        prompt_filter_chunk=True,
    ),
)

FLAVOURS: dict[str, Flavour] = {d.name: d for d in _TABLE}


def _usage(answer: Answer, flavour: Flavour) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": answer.usage.prompt_tokens,
        "completion_tokens": answer.usage.completion_tokens,
        "total_tokens": answer.usage.total_tokens,
    }
    if flavour.usage_details_key:
        details = flavour.usage_details or {}
        for key in ("prompt_tokens_details", "completion_tokens_details"):
            if key in details or flavour.usage_details is None:
                usage[key] = copy.deepcopy(details.get(key))
    return usage


def _head(answer: Answer, flavour: Flavour, obj: str) -> dict[str, Any]:
    head: dict[str, Any] = {
        "id": answer.id,
        "object": obj,
        "created": answer.created,
        "model": answer.model,
    }
    head.update(copy.deepcopy(flavour.top_level))
    if flavour.system_fingerprint is not None:
        head["system_fingerprint"] = flavour.system_fingerprint
    return head


def _logprobs(entries: list[dict[str, Any]], answer: Answer) -> dict[str, Any] | None:
    return {"content": entries, "refusal": None} if answer.logprobs else None


def _message(choice: Choice, flavour: Flavour) -> dict[str, Any]:
    calls = choice.tool_calls
    message: dict[str, Any] = {"role": "assistant", "content": None if calls else choice.content}
    message.update(copy.deepcopy(flavour.message_extra))
    refusal = choice.refusal
    if refusal is not None:
        message["content"], message["refusal"] = None, refusal
    if calls:
        message["tool_calls"] = calls
    return message


def completion_body(answer: Answer, flavour: Flavour) -> dict[str, Any]:
    """The ``chat.completion`` object of ``answer`` in ``flavour``."""
    body = _head(answer, flavour, "chat.completion")
    if flavour.prompt_filter_chunk:
        body.update(_azure_prompt_filters(answer))
    choices = []
    for choice in answer.choices:
        item: dict[str, Any] = {"index": choice.index, "message": _message(choice, flavour)}
        if flavour.logprobs_key or answer.logprobs:
            item["logprobs"] = _logprobs(choice.logprobs, answer)
        item["finish_reason"] = choice.finish_reason
        item.update(copy.deepcopy(flavour.choice_extra))
        choices.append(item)
    body["choices"] = choices
    body["usage"] = _usage(answer, flavour)
    body.update(flavour.final_extra(answer))
    return body


def _chunk(
    answer: Answer,
    flavour: Flavour,
    index: int,
    delta: dict[str, Any],
    finish: str | None,
    logprobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": index, "delta": delta}
    if flavour.logprobs_key or answer.logprobs:
        choice["logprobs"] = _logprobs(logprobs or [], answer) if logprobs is not None else None
    choice["finish_reason"] = finish
    choice.update(copy.deepcopy(flavour.choice_extra))
    chunk = _head(answer, flavour, "chat.completion.chunk")
    chunk["choices"] = [choice]
    if answer.include_usage:
        chunk["usage"] = None
    return chunk


class ChoiceChunks:
    """The chunks of one choice, made as its tokens come: a role chunk, a chunk per token, then
    the finish: its own chunk, or (``finish_on_last_token``) the last token's chunk, so that in
    those flavours a token's chunk waits for the next token or the end. ``answer`` gives the
    head fields (id, created, model, whether logprobs and usage were asked for)."""

    def __init__(self, answer: Answer, flavour: Flavour, index: int) -> None:
        self._answer = answer
        self._flavour = flavour
        self._index = index
        self._held: Token | None = None  # finish_on_last_token: the newest token

    def start(self) -> list[dict[str, Any]]:
        """The role chunk."""
        delta = copy.deepcopy(self._flavour.role_delta)
        return [_chunk(self._answer, self._flavour, self._index, delta, None)]

    def token(self, token: Token) -> list[dict[str, Any]]:
        """The chunks ready once ``token`` came (none, or one)."""
        if not self._flavour.finish_on_last_token:
            return [self._token_chunk(token, None)]
        ready = [] if self._held is None else [self._token_chunk(self._held, None)]
        self._held = token
        return ready

    def finish(self, finish_reason: str) -> list[dict[str, Any]]:
        """The last chunk of the choice."""
        if self._held is not None:
            held, self._held = self._held, None
            return [self._token_chunk(held, finish_reason)]
        delta = copy.deepcopy(self._flavour.finish_delta)
        return [_chunk(self._answer, self._flavour, self._index, delta, finish_reason)]

    def _token_chunk(self, token: Token, finish: str | None) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if token.refusal:
            delta["refusal"] = token.refusal
        elif token.text or not token.tool_calls:
            delta["content"] = token.text
        if token.tool_calls:
            delta["tool_calls"] = [copy.deepcopy(t) for t in token.tool_calls]
        logprobs = list(token.logprobs) if self._answer.logprobs else None
        return _chunk(self._answer, self._flavour, self._index, delta, finish, logprobs)


def _choice_chunks(answer: Answer, flavour: Flavour, choice: Choice) -> list[dict[str, Any]]:
    chunker = ChoiceChunks(answer, flavour, choice.index)
    chunks = chunker.start()
    for token in choice.tokens:
        chunks.extend(chunker.token(token))
    return chunks + chunker.finish(choice.finish_reason)


def stream_opening(answer: Answer, flavour: Flavour) -> list[dict[str, Any]]:
    """The chunks before any choice's: Azure's prompt-filter chunk, in that flavour."""
    if not flavour.prompt_filter_chunk:
        return []
    return [
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            **_azure_prompt_filters(answer),
        }
    ]


def stream_closing(answer: Answer, flavour: Flavour, chunks: list[dict[str, Any]]) -> None:
    """End the stream's ``chunks`` (its last ones at least): append the usage chunk when it was
    asked for, and give the last object the flavour's final keys."""
    if answer.include_usage:
        usage_chunk = _head(answer, flavour, "chat.completion.chunk")
        usage_chunk["choices"] = []
        usage_chunk["usage"] = _usage(answer, flavour)
        usage_chunk.update(flavour.final_extra(answer))
        chunks.append(usage_chunk)
    elif chunks:
        chunks[-1].update(flavour.final_extra(answer))


def stream_chunks(answer: Answer, flavour: Flavour) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of ``answer`` in ``flavour``: per choice a role
    chunk, one chunk per token and the finish; choices interleaved step by step."""
    per_choice = [_choice_chunks(answer, flavour, c) for c in answer.choices]
    chunks = stream_opening(answer, flavour)
    for step in range(max(map(len, per_choice), default=0)):
        chunks.extend(c[step] for c in per_choice if step < len(c))
    stream_closing(answer, flavour, chunks)
    return chunks


class LiveChunks:
    """The chunks of a one-choice stream while the model makes its tokens: the opening and
    role chunks go out with the first tokens' (:meth:`tokens`), the finish and the closing
    chunks with the last ones' (:meth:`close`); together they are what :func:`stream_chunks`
    gives the whole answer. ``head`` is the answer before any token (id, created, model, what
    was asked for)."""

    def __init__(self, head: Answer, flavour: Flavour) -> None:
        self._chunker = ChoiceChunks(head, flavour, 0)
        self._flavour = flavour
        self._ready = [*stream_opening(head, flavour), *self._chunker.start()]

    def tokens(self, tokens: Iterable[Token]) -> list[dict[str, Any]]:
        """The chunks ready once ``tokens`` came (none while a flavour holds the last one)."""
        ready, self._ready = self._ready, []
        for token in tokens:
            ready.extend(self._chunker.token(token))
        return ready

    def close(self, answer: Answer) -> list[dict[str, Any]]:
        """The last chunks, once ``answer`` (the whole one-choice answer) is made."""
        last, self._ready = self._ready, []
        last.extend(self._chunker.finish(answer.choices[0].finish_reason))
        stream_closing(answer, self._flavour, last)
        return last
