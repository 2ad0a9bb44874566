"""Response shape and request acceptance checks (group "response"): the answer's schema and
content, the standard parameters, content parts, history. Stop strings, logit_bias and the
extra sampling fields are in conformance._checks.parameters, which shares the helpers here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from conformance._assertions import chunks_of, json_body, require_status, require_status_in
from conformance._context import WEATHER_TOOL, Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = [
    "COUNT_PROMPT",
    "GREEDY_MAX_TOKENS",
    "accept_std_params",
    "content_nullability",
    "content_parts",
    "counting",
    "first_choice",
    "greedy_counting",
    "history_null_content",
    "max_completion_tokens",
    "message_content",
    "no_text_beside_tool_calls",
    "require_greedy_answer",
    "resp_schema",
    "skip_unless_deterministic",
    "streamed_text",
]


@check(group="response", severity="must")
async def resp_schema(ctx: Context) -> None:
    """A non-stream answer is a chat.completion that validates, with choices[i].index == i.
    The run's basic answer is application/json, validates against chat.completion at the run's
    schema level, and choice i has index i and message.role "assistant".

    The SDKs parse answers into typed objects; a field of the wrong type or a missing one fails
    there, before the user sees any text."""
    exchange = await ctx.completion()
    require_status(exchange, 200)
    if exchange.content_type != "application/json":
        raise CheckFailed(
            "wrong Content-Type",
            expected="application/json",
            received=exchange.content_type or "(none)",
            exchange=exchange,
        )
    body = json_body(exchange)
    error = ctx.validate("chat-completion", body)
    if error:
        raise CheckFailed(
            f"the answer does not match the chat.completion schema ({ctx.schema_level})",
            received=error,
            exchange=exchange,
        )
    for position, choice in enumerate(body["choices"]):
        if choice.get("index") != position:
            raise CheckFailed(
                f"choices[{position}].index is wrong",
                expected=str(position),
                received=repr(choice.get("index")),
                exchange=exchange,
            )
        role = (choice.get("message") or {}).get("role")
        if role != "assistant":
            raise CheckFailed(
                f"choices[{position}].message.role is wrong",
                expected="assistant",
                received=repr(role),
                exchange=exchange,
            )


# Request acceptance and shaping: content nullability, standard parameters, content parts,
# history; and the helpers conformance._checks.parameters shares.

COUNT_PROMPT = "Count from 1 to 30, separated by spaces."
GREEDY_MAX_TOKENS = 48


def counting(ctx: Context, content: Any = COUNT_PROMPT, **overrides: Any) -> dict[str, Any]:
    """A temperature-0 request whose answer is long enough to cut and to compare."""
    body = ctx.request(
        messages=[{"role": "user", "content": content}],
        temperature=0,
        seed=1234,
        max_tokens=GREEDY_MAX_TOKENS,
    )
    body.update(overrides)
    return body


def greedy_counting(ctx: Context, again: bool = False) -> Awaitable[Exchange]:
    """The run's temperature-0 counting answer (``again``: a second one, to tell whether the
    endpoint is deterministic at temperature 0)."""
    key = "response:greedy-again" if again else "response:greedy"
    return ctx.shared(key, lambda: ctx.chat(counting(ctx)))


def first_choice(exchange: Exchange) -> dict[str, Any]:
    """The first choice of a 200 non-stream answer, or a failure saying why there is none."""
    require_status(exchange, 200)
    if exchange.error:
        raise CheckFailed(
            "the answer did not end cleanly", received=exchange.error, exchange=exchange
        )
    body = json_body(exchange)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CheckFailed(
            "the answer has no choice",
            expected="choices[0]",
            received=json.dumps(body)[:200],
            exchange=exchange,
        )
    first: dict[str, Any] = choices[0]
    return first


def message_content(exchange: Exchange) -> Any:
    """choices[0].message.content of a 200 non-stream answer."""
    return (first_choice(exchange).get("message") or {}).get("content")


def streamed_text(exchange: Exchange) -> tuple[str, Any]:
    """The joined content deltas of choice 0 of a stream up to its finish, and its
    finish_reason (what comes after the finish is nothing_after_finish's business)."""
    _, chunks = chunks_of(exchange)
    text = ""
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            piece = (choice.get("delta") or {}).get("content")
            text += piece if isinstance(piece, str) else ""
            if choice.get("finish_reason") is not None:
                return text, choice["finish_reason"]
    return text, None


async def skip_unless_deterministic(ctx: Context) -> None:
    """Skip, as inconclusive, when two temperature-0 answers to one request differ."""
    first, second = await asyncio.gather(greedy_counting(ctx), greedy_counting(ctx, again=True))
    if message_content(first) != message_content(second):
        raise CheckSkipped(
            "inconclusive: two temperature-0 answers to the same request differ, so answers "
            "cannot be compared"
        )


def _tools_answer(ctx: Context) -> Awaitable[Exchange]:
    """The run's non-stream answer to a tool_choice "required" request, sent once."""
    body = ctx.request(
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    return ctx.shared("response:tools", lambda: ctx.chat(body))


def _messages(exchange: Exchange) -> list[tuple[int, dict[str, Any]]]:
    """(position, message) of every choice of a 200 non-stream answer."""
    require_status(exchange, 200)
    choices = json_body(exchange).get("choices") or []
    return [(p, c.get("message") or {}) for p, c in enumerate(choices) if isinstance(c, dict)]


async def require_greedy_answer(ctx: Context, exchange: Exchange, message: str) -> None:
    """Fail with ``message`` unless ``exchange`` answers as the run's temperature-0 counting
    answer does; skip as inconclusive when the endpoint is not deterministic at temperature 0."""
    content, expected = message_content(exchange), message_content(await greedy_counting(ctx))
    if content != expected:
        await skip_unless_deterministic(ctx)
        raise CheckFailed(
            message,
            expected=repr(expected)[:300],
            received=repr(content)[:300],
            exchange=exchange,
        )


@check(group="response", severity="must")
async def content_nullability(ctx: Context) -> None:
    """message.content is a string, or null / "" when the message has tool_calls.
    Every message has a content key: a string, or beside tool_calls null or a string; with
    tools claimed, a tool_choice "required" answer is looked at too.

    Clients read message.content before anything else; a missing key or a non-string breaks
    typed clients (the SDKs' models, TypeScript's string | null)."""
    exchanges = [await ctx.completion()]
    if "tools" in ctx.endpoint.capabilities:
        tools = await _tools_answer(ctx)
        if tools.status == 200:  # a refusal is the tools checks' business
            exchanges.append(tools)
    for exchange in exchanges:
        for position, message in _messages(exchange):
            if "content" not in message:
                raise CheckFailed(
                    f"choices[{position}].message has no content key",
                    expected="content: a string, or null with tool_calls",
                    received=json.dumps(message)[:200],
                    exchange=exchange,
                )
            content = message["content"]
            if message.get("tool_calls"):
                if content is not None and not isinstance(content, str):
                    raise CheckFailed(
                        f"choices[{position}].message.content beside tool_calls is neither "
                        "null nor a string",
                        expected='null or ""',
                        received=json.dumps(content)[:200],
                        exchange=exchange,
                    )
            elif not isinstance(content, str):
                raise CheckFailed(
                    f"choices[{position}].message.content is not a string, and there are no "
                    "tool_calls",
                    expected="a string",
                    received=json.dumps(content)[:200],
                    exchange=exchange,
                )


@check(group="response", severity="should", capability="tools")
async def no_text_beside_tool_calls(ctx: Context) -> None:
    """A message with tool_calls has no text: content is null or "".
    The tool_choice "required" answer's messages that carry tool_calls have content null or "".

    OpenAI answers a call with content null. Servers whose tool parser leaves the model's words
    (a preamble, the call's own markup) in content make clients that show content print it, and
    clients that check content first take the answer for text."""
    exchange = await _tools_answer(ctx)
    if exchange.status != 200:
        raise CheckSkipped(
            f"inconclusive: the tool request got {exchange.status or exchange.error} "
            "(the tools checks report it)"
        )
    calling = [(p, m) for p, m in _messages(exchange) if m.get("tool_calls")]
    if not calling:
        raise CheckSkipped("inconclusive: the answer has no tool call (tool_nonstream reports it)")
    for position, message in calling:
        content = message.get("content")
        if content:
            raise CheckFailed(
                f"choices[{position}].message has text beside its tool_calls",
                expected='content null or "" with tool_calls',
                received=repr(content)[:200],
                exchange=exchange,
            )


def _std_params(ctx: Context) -> dict[str, Any]:
    params: dict[str, Any] = {
        "n": 1,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "logit_bias": {},
        "stop": ["\n\n\n\n"],
        "seed": 1234,
        "user": "chatcompat-conformance",
        "max_completion_tokens": 16,
    }
    if "tools" in ctx.endpoint.capabilities:
        params.update(tools=[WEATHER_TOOL], parallel_tool_calls=True)
    return params


def _without_max_tokens(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "max_tokens"}


@check(group="response", severity="must")
async def accept_std_params(ctx: Context) -> None:
    """The standard parameters are accepted together in one request.
    One request with n, presence_penalty, frequency_penalty, logit_bias, stop, seed, user and
    max_completion_tokens (and parallel_tool_calls with tools) gets 200; on a refusal each is sent
    alone to name the culprits.

    Clients written for OpenAI send these (user to trace abuse, seed to reproduce an answer); a
    server that refuses one refuses every request such a client makes."""
    params = _std_params(ctx)
    exchange = await ctx.chat(_without_max_tokens(ctx.request(**params)))
    if exchange.status == 200:
        first_choice(exchange)
        return
    rejected = []
    for name, value in params.items():  # find which ones, only when something was rejected
        if name == "tools":
            continue
        one = ctx.request(max_tokens=16, **{name: value})
        if name == "parallel_tool_calls":
            one["tools"] = params["tools"]
        answer = await ctx.chat(_without_max_tokens(one) if name.startswith("max_") else one)
        if answer.status != 200:
            rejected.append(f"{name} -> {answer.status or answer.error}")
    raise CheckFailed(
        "a request with the standard parameters was not answered",
        expected="200",
        received="; ".join(rejected) or f"{exchange.status or exchange.error} (all together)",
        exchange=exchange,
    )


@check(group="response", severity="must")
async def max_completion_tokens(ctx: Context) -> None:
    """max_completion_tokens caps the answer like max_tokens; with both, one of them holds.
    max_completion_tokens 5 ends the answer with finish_reason "length" in at most 5 completion
    tokens; with max_tokens 3 as well, a 400 or an answer capped by one of them.

    OpenAI deprecated max_tokens for max_completion_tokens (its reasoning models refuse
    max_tokens), so clients written for it send only the new one; a server that ignores it runs to
    its own limit."""
    limit = 5
    body = _without_max_tokens(counting(ctx, max_completion_tokens=limit))
    exchange = await ctx.chat(body)
    choice = first_choice(exchange)
    usage = json_body(exchange).get("usage") or {}
    spent = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if choice.get("finish_reason") != "length" or (isinstance(spent, int) and spent > limit):
        raise CheckFailed(
            "max_completion_tokens did not cap the answer",
            expected=f'finish_reason "length", at most {limit} completion tokens',
            received=f"finish_reason {choice.get('finish_reason')!r}, completion_tokens {spent}",
            exchange=exchange,
        )
    both = await ctx.chat(counting(ctx, max_tokens=3, max_completion_tokens=6))
    if both.status in (400, 422):
        return  # refusing the pair is allowed
    usage = json_body(both).get("usage") if both.status == 200 else None
    spent = usage.get("completion_tokens") if isinstance(usage, dict) else None
    finish = first_choice(both).get("finish_reason")
    if finish != "length" or (isinstance(spent, int) and spent > 6):
        raise CheckFailed(
            "with max_tokens 3 and max_completion_tokens 6, neither capped the answer",
            expected='400, or finish_reason "length" within 6 completion tokens',
            received=f"finish_reason {finish!r}, completion_tokens {spent}",
            exchange=both,
        )


@check(group="response", severity="must")
async def content_parts(ctx: Context) -> None:
    """Content given as [{"type": "text"}] parts gives the same answer as a plain string.
    At temperature 0, content given as text parts gives the answer the same text gives as a plain
    string; inconclusive when two temperature-0 answers to one request differ.

    Multimodal clients and frameworks send text as parts even when there is no image; a server
    that refuses parts, or reads them otherwise, answers those clients differently."""
    parts = [{"type": "text", "text": COUNT_PROMPT}]
    exchange = await ctx.chat(counting(ctx, content=parts))
    await require_greedy_answer(
        ctx, exchange, "the answer to text parts differs from the answer to the same plain string"
    )


def _history(ctx: Context) -> dict[str, Any]:
    """A conversation whose assistant turns have null and "" content."""
    if "tools" not in ctx.endpoint.capabilities:
        return ctx.request(
            messages=[
                {"role": "user", "content": "Wait for my next message."},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "Say hello in one short sentence."},
            ]
        )

    def call(call_id: str, city: str) -> dict[str, Any]:
        arguments = json.dumps({"city": city})
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": arguments},
        }

    return ctx.request(
        messages=[
            {"role": "user", "content": "What is the weather in Paris and in Rome?"},
            {"role": "assistant", "content": None, "tool_calls": [call("abcDEF123", "Paris")]},
            {"role": "tool", "tool_call_id": "abcDEF123", "content": "18 C, sunny"},
            {"role": "assistant", "content": "", "tool_calls": [call("ghiJKL456", "Rome")]},
            {"role": "tool", "tool_call_id": "ghiJKL456", "content": "22 C, cloudy"},
        ],
        tools=[WEATHER_TOOL],
    )


@check(group="response", severity="must")
async def history_null_content(ctx: Context) -> None:
    """Assistant history messages with content null (beside tool_calls) or "" are accepted.
    A history with assistant content null beside tool_calls and content "" (with tools claimed;
    else an assistant "") gets 200.

    Clients send back the assistant messages they got, and OpenAI's own tool-call messages have
    content null."""
    exchange = await ctx.chat(_history(ctx))
    require_status_in(
        'a history with assistant content null / "" was refused', exchange, (200,), "200"
    )
    first_choice(exchange)
