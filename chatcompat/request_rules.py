"""The rules a chat-completion request sets for its answer, written once for every answer source:
the mock's template answers (``mockserver._template``), the reference model (generate mode,
through ``reference_model.request``) and the suite's oracle (``conformance._oracle``).

Standard library only: every part may import this module (it imports none of them, nor torch
or aiohttp). A rule about a request *error* raises :class:`RuleViolation`, which the mock
answers as a 400 in the OpenAI envelope.

Which rule is shared and which is a source's own:

- the completion limit, the stop strings, the forced tool calls, integral numbers, the sampling
  parameters and the context length are shared (one function each below);
- ``tool_choice`` ``"auto"`` (the default when tools are given) is *not* a shared rule: each
  source makes its own choice (the template answer calls the first function tool, the
  reference model writes text);
- what an answer may build from the request's schemas is bounded the same way in every source
  (:class:`BuildBudget`): a 247-byte request whose schema asks for ``minItems: 1000000`` is a
  400, not a minute of work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, cast

__all__ = [
    "INTEGER_PARAMS",
    "MAX_BUILT_BYTES",
    "BuildBudget",
    "RuleViolation",
    "SamplingFields",
    "check_context_length",
    "completion_limit",
    "forced_tools",
    "function_tools",
    "integral",
    "sampling_fields",
    "stop_strings",
]

# Integer parameters: JSON Schema counts 2.0 as an integer, Python's range() does not.
INTEGER_PARAMS = ("n", "max_tokens", "max_completion_tokens", "top_logprobs", "seed", "top_k")
# The JSON text an answer may build from the request's schemas, all choices together: a
# template's stream of 16 KiB of tool arguments is about 1.4 MB of events, made in about 70 ms
# on the event loop (with 20 top logprobs per token, about 1 s: as long as n=128 choices of
# the seed text with them, which OpenAI's own limits allow).
MAX_BUILT_BYTES = 16 * 1024
# The float fields of reference_model.SamplingParams, named as in the request.
_FLOAT_PARAMS = ("temperature", "top_p", "min_p", "repetition_penalty", "frequency_penalty",
                 "presence_penalty")  # fmt: skip


class RuleViolation(ValueError):
    """A request breaks a rule: what a server answers with status 400 (``message``, and the
    ``param`` and ``code`` of OpenAI's error envelope)."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BuildBudget:
    """The bytes of JSON an answer source may still build from a request's schemas (the
    template's schema instances, generate mode's forced text), counted while it builds: past
    ``limit`` (bytes; :data:`MAX_BUILT_BYTES`), :meth:`spend` raises the 400 that says so,
    before the rest is built."""

    def __init__(self, limit: int = MAX_BUILT_BYTES, param: str | None = None) -> None:
        self.limit = limit
        self.left = limit
        self.param = param  # the request field being built, named by the error

    def at(self, param: str) -> BuildBudget:
        """This budget, counting for ``param`` from now on."""
        self.param = param
        return self

    def spend(self, size: int) -> None:
        """Count ``size`` more bytes; a :class:`RuleViolation` (``answer_too_large``) once more
        than ``limit`` are counted."""
        self.left -= size
        if self.left < 0:
            where = f"'{self.param}'" if self.param else "the request's schemas"
            raise RuleViolation(
                f"The answer to this request is too large for the mock: the JSON it builds "
                f"from {where} passes {self.limit} bytes. Ask for fewer or smaller items "
                "(minItems, minLength, required properties, n).",
                param=self.param,
                code="answer_too_large",
            )


def integral(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` with integral floats (``"n": 2.0``, valid JSON Schema integers) made ints,
    for the parameters in :data:`INTEGER_PARAMS` (``request`` itself when there are none)."""
    floats = {k: int(v) for k in INTEGER_PARAMS if isinstance(v := request.get(k), float)}
    return {**request, **floats} if floats else request


def completion_limit(request: Mapping[str, Any]) -> int | None:
    """The completion token limit of every choice: ``max_completion_tokens``, else
    ``max_tokens`` (OpenAI deprecated it for the former), else None (up to the context end).

    A choice cut by the limit finishes with ``"length"``; the tokens a choice spends (end
    token included) never exceed it.
    """
    for key in ("max_completion_tokens", "max_tokens"):
        if request.get(key) is not None:
            return int(request[key])
    return None


def stop_strings(request: Mapping[str, Any]) -> tuple[str, ...]:
    """The stop strings of ``request`` (``stop``: a string or a list of up to 4), in order.

    Empty strings are ignored: "" cannot end any text. OpenAI's schema allows it
    (openai/openai-openapi openapi.yaml ``StopConfiguration``: items are plain strings), vLLM
    refuses it (vllm-project/vllm vllm/sampling_params.py ``SamplingParams._verify_args``:
    "stop cannot contain an empty string"); a request with "" among its stops is answered
    exactly as the same request without it.
    """
    stop = request.get("stop")
    if stop is None:
        return ()
    return tuple(s for s in ([stop] if isinstance(stop, str) else stop) if s)


def function_tools(tools: Sequence[Mapping[str, Any]] | None) -> tuple[Mapping[str, Any], ...]:
    """The function tools among ``tools`` (``{"type": "function", "function": {...}}``), in
    order; custom tools cannot be called by these sources."""
    return tuple(t for t in tools or () if t.get("type") == "function")


def forced_tools(
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: Any,
    parallel_tool_calls: bool | None = None,
) -> tuple[Mapping[str, Any], ...]:
    """The function tools a request makes the answer call, one call each, in this order.

    - a named function (``{"type": "function", "function": {"name": NAME}}``): the first tool
      of that name;
    - ``"required"``: every function tool, or only the first when ``parallel_tool_calls`` is
      false (OpenAI: "the model must call one or more tools");
    - ``"none"``, ``"auto"``, absent, or another shape (allowed_tools, a custom tool): none.
      ``"auto"`` is the source's own choice (see the module docstring).

    An answer that calls them finishes with ``"tool_calls"``; one cut by the token limit does
    not call them.
    """
    functions = function_tools(tools)
    if tool_choice == "required":
        return functions if parallel_tool_calls is not False else functions[:1]
    if isinstance(tool_choice, Mapping) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
        return tuple(t for t in functions if t["function"]["name"] == name)[:1]
    return ()


class SamplingFields(TypedDict, total=False):
    """Field values of ``reference_model.SamplingParams``; an absent field keeps the sampler's
    neutral default."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repetition_penalty: float
    frequency_penalty: float
    presence_penalty: float
    logit_bias: dict[int, float]
    seed: int | None


def sampling_fields(request: Mapping[str, Any], vocab_size: int) -> SamplingFields:
    """The sampler's parameters set by ``request`` (a validated body), for a model of
    ``vocab_size`` tokens.

    Unset or null fields are left out (the neutral value); numbers become floats, ``top_k``
    an int with -1 made 0 (both mean off: vLLM ``SamplingParams``), ``seed`` an int or None;
    ``logit_bias`` keys become token ids, and ids at or above ``vocab_size`` are dropped (a
    token the model does not have is never sampled, whatever its bias).
    """
    fields: dict[str, Any] = {
        key: float(request[key]) for key in _FLOAT_PARAMS if request.get(key) is not None
    }
    if request.get("top_k") is not None:
        fields["top_k"] = max(int(request["top_k"]), 0)
    seed = request.get("seed")
    fields["seed"] = None if seed is None else int(seed)
    bias = {int(k): float(v) for k, v in (request.get("logit_bias") or {}).items()}
    fields["logit_bias"] = {k: v for k, v in bias.items() if k < vocab_size}
    return cast("SamplingFields", fields)


def check_context_length(prompt_tokens: int, limit: int | None, context_length: int) -> None:
    """Raise the 400 ``context_length_exceeded`` (param ``messages``) of a prompt of
    ``prompt_tokens`` that, with a completion of up to ``limit`` tokens (None: at least one),
    does not fit in ``context_length`` tokens.

    Each answer source checks it once with its own count: the template source with the
    approximate count and the configured context, the reference model with the exact prompt
    ids and the smaller of that and its own context. The wording is OpenAI's: with a limit,
    "you requested N tokens (P in the messages, L in the completion)"; without one, "your
    messages resulted in P tokens".
    """
    head = f"This model's maximum context length is {context_length} tokens. However, "
    if limit is None:
        if prompt_tokens < context_length:
            return
        message = (
            f"{head}your messages resulted in {prompt_tokens} tokens. Please reduce the "
            "length of the messages."
        )
    else:
        if prompt_tokens + limit <= context_length:
            return
        message = (
            f"{head}you requested {prompt_tokens + limit} tokens ({prompt_tokens} in the "
            f"messages, {limit} in the completion). Please reduce the length of the messages "
            "or completion."
        )
    raise RuleViolation(message, param="messages", code="context_length_exceeded")
