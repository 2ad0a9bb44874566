"""Defects at the request stages: ``request_raw`` (the parsed body, before validation) and
``request`` (the validated body, before the answer is made), both dict -> dict.

A ``request_raw`` hook decides what is accepted or refused (it may raise ``ApiError``); a
``request`` hook changes what the answer is made from (a parameter left out is ignored).
"""

from __future__ import annotations

from typing import Any, NoReturn

from mockserver._defects.defect import Defect, Hook
from mockserver._defects.hooks import without
from mockserver._errors import ApiError
from mockserver._faults import Fault, parse_fault

__all__ = ["DEFECTS"]

_SERVER_ERROR = "The server had an error processing your request."


def _refuse(status: int, message: str, param: str | None = None) -> NoReturn:
    raise ApiError(status, message, param=param)


def _refuse_user(body: dict[str, Any]) -> dict[str, Any]:
    if "user" in body:
        _refuse(422, "extra_forbidden: Extra inputs are not permitted (body.user)", "user")
    return body


def _refuse_content_parts(body: dict[str, Any]) -> dict[str, Any]:
    for message in body.get("messages") or []:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            _refuse(400, "Message content must be a string.", "messages")
    return body


def _refuse_empty_assistant(body: dict[str, Any]) -> dict[str, Any]:
    for message in body.get("messages") or []:
        assistant = isinstance(message, dict) and message.get("role") == "assistant"
        if assistant and message.get("content") == "":
            _refuse(400, "Assistant message content must not be empty.", "messages")
    return body


def _refused_user(body: dict[str, Any]) -> str | None:
    """The user of a request that validation will refuse for want of a messages list."""
    user = body.get("user")
    return user if isinstance(user, str) and not isinstance(body.get("messages"), list) else None


def _poison_after_refusal() -> dict[str, Hook]:
    """A request_raw hook remembering the users of refused requests (no messages list) and
    failing their later requests with 500."""
    poisoned: set[str] = set()

    def hook(body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("user")
        if isinstance(user, str) and user in poisoned:
            _refuse(500, _SERVER_ERROR)
        refused = _refused_user(body)
        if refused is not None:
            poisoned.add(refused)
        return body

    return {"request_raw": hook}


_STALL = parse_fault("stall-after=1;stall=15")  # 15 s: well past a 10 s bound on the answer


def _slow_after_refusal() -> dict[str, Hook]:
    """Hooks remembering the users of refused requests (request_raw) and stalling their later
    streams (the fault stage breaks streams only): the request hook marks a valid stream of such
    a user, the fault hook that runs next for the same request gives it the stall."""
    refused: set[str] = set()
    marked = [False]  # the request now between the request and fault stages is to stall

    def remember(body: dict[str, Any]) -> dict[str, Any]:
        user = _refused_user(body)
        if user is not None:
            refused.add(user)
        return body

    def mark(body: dict[str, Any]) -> dict[str, Any]:
        user = body.get("user")
        marked[0] = bool(body.get("stream")) and isinstance(user, str) and user in refused
        return body

    def stall(fault: Fault | None) -> Fault | None:
        stalled, marked[0] = marked[0], False
        return _STALL if stalled and fault is None else fault

    return {"request_raw": remember, "request": mark, "fault": stall}


def _lax_tool_choice(body: dict[str, Any]) -> dict[str, Any]:
    choice, tools = body.get("tool_choice"), body.get("tools") or []
    names = {(t.get("function") or {}).get("name") for t in tools if isinstance(t, dict)}
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    named = isinstance(choice, dict) and choice.get("type") == "function" and name in names
    valid = choice in ("none", "auto", "required") or named
    if choice is None or (tools and valid):
        return body
    return {k: v for k, v in body.items() if k != "tool_choice"}


def _token_id_keys_only(body: dict[str, Any]) -> dict[str, Any]:
    """logit_bias without its non-integer keys (read as token text, as llama.cpp does, and
    here ignored)."""
    bias = body.get("logit_bias")
    if not isinstance(bias, dict):
        return body
    return {**body, "logit_bias": {k: v for k, v in bias.items() if str(k).isdigit()}}


def _first_four_stops(body: dict[str, Any]) -> dict[str, Any]:
    stop = body.get("stop")
    return {**body, "stop": stop[:4]} if isinstance(stop, list) and len(stop) > 4 else body


def _stop_start_leaks(body: dict[str, Any]) -> dict[str, Any]:
    """A stream stops at each stop string less its first character, so that character, the
    start of the stop string, is sent before the stream ends (a partial match flushed early)."""
    stop = body.get("stop")
    if not body.get("stream") or not stop:
        return body
    stops = [stop] if isinstance(stop, str) else stop
    return {**body, "stop": [s[1:] if len(s) > 1 else s for s in stops]}


def _without_media_parts(body: dict[str, Any]) -> dict[str, Any]:
    """The request with its image_url and input_audio content parts left out."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body

    def text_only(message: Any) -> Any:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            return message
        kept = [p for p in content if not isinstance(p, dict) or p.get("type") not in _MEDIA]
        return {**message, "content": kept}

    return {**body, "messages": [text_only(m) for m in messages]}


_MEDIA = ("image_url", "input_audio")


def _one_fewer_top_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    top = body.get("top_logprobs")
    return {**body, "top_logprobs": top - 1} if isinstance(top, int) and top > 0 else body


_RARE_PARAMS = (
    "metadata",
    "store",
    "service_tier",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "reasoning_effort",
    "verbosity",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "moderation",
)
_SAMPLING_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


def _crash_on_stop_list(body: dict[str, Any]) -> dict[str, Any]:
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) >= 2:
        _refuse(500, _SERVER_ERROR)
    return body


def _clamp_sampling(body: dict[str, Any]) -> dict[str, Any]:
    clamped = dict(body)
    for key, (low, high) in _SAMPLING_RANGES.items():
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            clamped[key] = min(max(value, low), high)
    return clamped


def _default_repetition_penalty(body: dict[str, Any]) -> dict[str, Any]:
    # What a server does when its generation_config.json sets defaults the request left out.
    return (
        body if body.get("repetition_penalty") is not None else {**body, "repetition_penalty": 1.3}
    )


def _untooled(body: dict[str, Any]) -> bool:
    """Requests without tools: a hook limited to them leaves tool calls alone."""
    return not body.get("tools")


DEFECTS = (
    # What is accepted or refused (request_raw).
    Defect(
        "stream-options-without-stream",
        "stream_options is accepted (and ignored) when stream is false.",
        {"request_raw": without("stream_options", when=lambda r: not r.get("stream"))},
    ),
    Defect(
        "user-extra-forbidden",
        "The standard 'user' parameter is refused with 422 extra_forbidden.",
        {"request_raw": _refuse_user},
    ),
    Defect(
        "content-parts-rejected",
        'Message content given as [{"type": "text"}] parts is refused with 400.',
        {"request_raw": _refuse_content_parts},
    ),
    Defect(
        "empty-assistant-content-rejected",
        'Assistant history messages with content "" are refused with 400.',
        {"request_raw": _refuse_empty_assistant},
    ),
    Defect(
        "logit-bias-unchecked",
        "logit_bias keys are not checked: non-integer and out-of-vocab keys are accepted.",
        {"request_raw": without("logit_bias")},
    ),
    Defect(
        "logit-bias-text-keys",
        "Non-integer logit_bias keys are accepted (llama.cpp reads them as token text); token "
        "ids are still checked.",
        {"request_raw": _token_id_keys_only},
    ),
    Defect(
        "five-stops-accepted",
        "A stop list longer than 4 is cut to its first 4 strings instead of refused.",
        {"request_raw": _first_four_stops},
    ),
    Defect(
        "content-part-ignored",
        "image_url and input_audio parts are dropped unread and the text answered, not 400.",
        {"request_raw": _without_media_parts},
    ),
    Defect(
        "stop-prefix-leak",
        "A stream sends the first character of the stop string that ends it.",
        {"request": _stop_start_leaks},
    ),
    Defect(
        "ext-sampling-unchecked",
        "top_k, min_p and repetition_penalty are dropped unchecked, out-of-range values too.",
        {"request_raw": without("top_k", "min_p", "repetition_penalty")},
    ),
    Defect(
        "abuse-poisons-user",
        "After a refused request, every later request of the same user gets 500.",
        stateful=_poison_after_refusal,
    ),
    Defect(
        "slow-after-abuse",
        "After a refused request, every later stream of the same user stalls 15 s after its "
        "first event.",
        stateful=_slow_after_refusal,
    ),
    Defect(
        "tool-choice-unchecked",
        "An unknown named tool, tool_choice without tools or tool_choice {} is dropped, not 400.",
        {"request_raw": _lax_tool_choice},
    ),
    Defect(
        "top-logprobs-one-short",
        "top_logprobs=k gives k - 1 alternatives per token.",
        {"request_raw": _one_fewer_top_logprobs},
    ),
    Defect(
        "rare-params-unchecked",
        "Parameters few clients send (metadata, store, service_tier, audio, ...) are dropped "
        "unvalidated, so wrong values there get 200.",
        {"request_raw": without(*_RARE_PARAMS)},
    ),
    Defect(
        "sampling-params-clamped",
        "Out-of-range temperature, top_p and penalties are clamped into range and answered 200.",
        {"request_raw": _clamp_sampling},
    ),
    # What the answer is made from (request): usage, limits, stops, tools.
    Defect(
        "usage-without-opt-in",
        "Every stream ends with a usage chunk, include_usage or not.",
        {
            "request": lambda r: (
                {**r, "stream_options": {"include_usage": True}} if r.get("stream") else r
            )
        },
    ),
    Defect(
        "no-usage-chunk",
        "include_usage is ignored: no usage chunk ends the stream.",
        {"request": without("stream_options")},
    ),
    Defect(
        "max-completion-tokens-ignored",
        "max_completion_tokens is ignored on text requests (only max_tokens caps them).",
        {"request": without("max_completion_tokens", when=_untooled)},
    ),
    Defect(
        "stop-ignored",
        "Stop strings are ignored: the answer runs on past them.",
        {"request": without("stop")},
    ),
    Defect(
        "500-on-stop-list",
        "A valid request whose stop is a list of two or more strings gets 500.",
        {"request": _crash_on_stop_list},
    ),
    Defect(
        "parallel-tool-calls-ignored",
        "parallel_tool_calls=false is ignored: required calls every tool.",
        {"request": without("parallel_tool_calls")},
    ),
    Defect(
        "tool-choice-none-ignored",
        'tool_choice "none" is treated as "auto", so the tools get called.',
        {
            "request": lambda r: (
                {**r, "tool_choice": "auto"} if r.get("tool_choice") == "none" else r
            )
        },
    ),
    Defect(
        "tool-call-past-limit",
        "max_completion_tokens is ignored when tools are given, so a required call completes.",
        {"request": without("max_completion_tokens", when=lambda r: bool(r.get("tools")))},
    ),
    # How answers are sampled (request): only the model of generate mode samples.
    Defect(
        "top-k-ignored",
        "top_k > 1 is accepted and ignored.",
        {"request": without("top_k", when=lambda r: (r.get("top_k") or 0) > 1)},
    ),
    Defect(
        "top-k-1-ignored",
        "top_k=1 is taken to mean no top-k (as 0 and -1 do).",
        {"request": without("top_k", when=lambda r: r.get("top_k") == 1)},
    ),
    Defect(
        "top-p-ignored",
        "top_p is accepted and ignored.",
        {"request": without("top_p")},
    ),
    Defect(
        "min-p-ignored",
        "min_p is accepted and ignored.",
        {"request": without("min_p")},
    ),
    Defect(
        "penalties-ignored",
        "frequency_penalty and presence_penalty are accepted and ignored.",
        {"request": without("frequency_penalty", "presence_penalty")},
    ),
    Defect(
        "seed-ignored",
        "The seed is ignored: every answer is a fresh sample.",
        {"request": without("seed")},
    ),
    Defect(
        "default-repetition-penalty",
        "A repetition_penalty of 1.3 applies when the request leaves it out (a server default).",
        {"request": _default_repetition_penalty},
    ),
    Defect(
        "min-p-dropped-with-top-p",
        "min_p is ignored whenever top_p is also set.",
        {"request": without("min_p", when=lambda r: "top_p" in r)},
    ),
)
