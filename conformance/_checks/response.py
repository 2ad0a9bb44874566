"""Response shape and request acceptance checks (group "response")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from conformance._assertions import chunks_of, json_body, require_refused, require_status
from conformance._context import WEATHER_TOOL, Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped, CheckWarning
from conformance._registry import check

__all__ = [
    "accept_std_params",
    "content_nullability",
    "content_parts",
    "ext_sampling",
    "history_null_content",
    "logit_bias",
    "max_completion_tokens",
    "resp_schema",
    "stop",
]


@check(group="response")
async def resp_schema(ctx: Context) -> None:
    """A non-stream answer is a chat.completion that validates, with choices[i].index == i."""
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
# history, stop, logit_bias, the extra sampling parameters.

_COUNT_PROMPT = "Count from 1 to 30, separated by spaces."
_GREEDY_MAX_TOKENS = 48


def _counting(ctx: Context, content: Any = _COUNT_PROMPT, **overrides: Any) -> dict[str, Any]:
    """A temperature-0 request whose answer is long enough to cut and to compare."""
    body = ctx.request(
        messages=[{"role": "user", "content": content}],
        temperature=0,
        seed=1234,
        max_tokens=_GREEDY_MAX_TOKENS,
    )
    body.update(overrides)
    return body


def _greedy(ctx: Context, again: bool = False) -> Awaitable[Exchange]:
    """The run's temperature-0 counting answer (``again``: a second one, to tell whether the
    endpoint is deterministic at temperature 0)."""
    key = "response:greedy-again" if again else "response:greedy"
    return ctx.shared(key, lambda: ctx.chat(_counting(ctx)))


def _choice(exchange: Exchange) -> dict[str, Any]:
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


def _content(exchange: Exchange) -> Any:
    """choices[0].message.content of a 200 non-stream answer."""
    return (_choice(exchange).get("message") or {}).get("content")


def _streamed(exchange: Exchange) -> tuple[str, Any]:
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


async def _deterministic(ctx: Context) -> None:
    """Skip, as inconclusive, when two temperature-0 answers to one request differ."""
    first, second = await asyncio.gather(_greedy(ctx), _greedy(ctx, again=True))
    if _content(first) != _content(second):
        raise CheckSkipped(
            "inconclusive: two temperature-0 answers to the same request differ, so answers "
            "cannot be compared"
        )


@check(group="response")
async def content_nullability(ctx: Context) -> None:
    """message.content is a string, or null / "" when the message has tool_calls."""
    exchanges = [await ctx.completion()]
    if "tools" in ctx.endpoint.capabilities:
        body = ctx.request(
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
        )
        tools = await ctx.shared("response:tools", lambda: ctx.chat(body))
        if tools.status == 200:  # a refusal is the tools checks' business
            exchanges.append(tools)
    warning: CheckWarning | None = None
    for exchange in exchanges:
        require_status(exchange, 200)
        for position, choice in enumerate(json_body(exchange).get("choices") or []):
            message = choice.get("message") or {}
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
                if content:
                    warning = CheckWarning(
                        f"choices[{position}].message has text beside its tool_calls",
                        expected='content null or "" with tool_calls',
                        received=repr(content[:200]),
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
    if warning is not None:
        raise warning


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


@check(group="response")
async def accept_std_params(ctx: Context) -> None:
    """n, penalties, logit_bias, stop, seed, user, parallel_tool_calls and
    max_completion_tokens are accepted."""
    params = _std_params(ctx)
    exchange = await ctx.chat(_without_max_tokens(ctx.request(**params)))
    if exchange.status == 200:
        _choice(exchange)
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


@check(group="response")
async def max_completion_tokens(ctx: Context) -> None:
    """max_completion_tokens caps the answer like max_tokens; with both, one of them holds."""
    limit = 5
    body = _without_max_tokens(_counting(ctx, max_completion_tokens=limit))
    exchange = await ctx.chat(body)
    choice = _choice(exchange)
    usage = json_body(exchange).get("usage") or {}
    spent = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if choice.get("finish_reason") != "length" or (isinstance(spent, int) and spent > limit):
        raise CheckFailed(
            "max_completion_tokens did not cap the answer",
            expected=f'finish_reason "length", at most {limit} completion tokens',
            received=f"finish_reason {choice.get('finish_reason')!r}, completion_tokens {spent}",
            exchange=exchange,
        )
    both = await ctx.chat(_counting(ctx, max_tokens=3, max_completion_tokens=6))
    if both.status in (400, 422):
        return  # refusing the pair is allowed
    usage = json_body(both).get("usage") if both.status == 200 else None
    spent = usage.get("completion_tokens") if isinstance(usage, dict) else None
    finish = _choice(both).get("finish_reason")
    if finish != "length" or (isinstance(spent, int) and spent > 6):
        raise CheckFailed(
            "with max_tokens 3 and max_completion_tokens 6, neither capped the answer",
            expected='400, or finish_reason "length" within 6 completion tokens',
            received=f"finish_reason {finish!r}, completion_tokens {spent}",
            exchange=both,
        )


@check(group="response")
async def content_parts(ctx: Context) -> None:
    """Content given as [{"type": "text"}] parts gives the same answer as a plain string."""
    parts = [{"type": "text", "text": _COUNT_PROMPT}]
    exchange = await ctx.chat(_counting(ctx, content=parts))
    plain = await _greedy(ctx)
    content, expected = _content(exchange), _content(plain)
    if content != expected:
        await _deterministic(ctx)
        raise CheckFailed(
            "the answer to text parts differs from the answer to the same plain string",
            expected=repr(expected)[:300],
            received=repr(content)[:300],
            exchange=exchange,
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


@check(group="response")
async def history_null_content(ctx: Context) -> None:
    """Assistant history messages with content null (beside tool_calls) or "" are accepted."""
    exchange = await ctx.chat(_history(ctx))
    if exchange.status != 200:
        raise CheckFailed(
            'a history with assistant content null / "" was refused',
            expected="200",
            received=str(exchange.status or exchange.error),
            exchange=exchange,
        )
    _choice(exchange)


def _stop_in(text: str) -> str | None:
    """A stop string from the middle of ``text`` that spans token boundaries, or None."""
    if len(text) < 16:
        return None
    start = len(text) // 2
    stop = text[start : start + 6]
    return stop if stop.strip() and text.find(stop) > 0 else None


@check(group="response")
async def stop(ctx: Context) -> None:
    """A stop string ends the answer with "stop" and is left out, streamed too; > 4 stops: 400."""
    greedy = await _greedy(ctx)
    full = _content(greedy)
    cut = _stop_in(full) if isinstance(full, str) else None
    if cut is None:
        raise CheckSkipped(f"inconclusive: the temperature-0 answer is too short: {full!r}")
    expected = full[: full.find(cut)]
    plain, streamed = await asyncio.gather(
        ctx.chat(_counting(ctx, stop=[cut])), ctx.chat(_counting(ctx, stop=[cut], stream=True))
    )
    plain_choice = _choice(plain)
    answers = [
        (
            plain,
            (plain_choice.get("message") or {}).get("content"),
            plain_choice.get("finish_reason"),
        ),
        (streamed, *_streamed(streamed)),
    ]
    for exchange, content, finish in answers:
        if isinstance(content, str) and cut in content:
            raise CheckFailed(
                f"the stop string {cut!r} is in the answer",
                expected=repr(expected)[:300],
                received=repr(content)[:300],
                exchange=exchange,
            )
        if not isinstance(content, str) or not full.startswith(content.rstrip()):
            await _deterministic(ctx)
        if finish != "stop" or not isinstance(content, str) or len(content) > len(expected):
            raise CheckFailed(
                f"the stop string {cut!r} did not end the answer",
                expected=f'{expected!r} with finish_reason "stop"'[:300],
                received=f"{content!r} with finish_reason {finish!r}"[:300],
                exchange=exchange,
            )
    many = await ctx.chat(ctx.request(stop=["a1", "b2", "c3", "d4", "e5"], max_tokens=8))
    if many.status is None or many.status >= 500:
        raise CheckFailed(
            "five stop strings broke the server",
            expected="400 (or an answer)",
            received=str(many.status or many.error),
            exchange=many,
        )
    if many.status not in (400, 422):
        raise CheckWarning(
            "five stop strings were not refused (OpenAI allows at most 4)",
            expected="400",
            received=str(many.status or many.error),
            exchange=many,
        )


_BAD_BIAS = (("hello", "a non-integer key"), ("987654321", "an out-of-vocabulary token id"))


@check(group="response")
async def logit_bias(ctx: Context) -> None:
    """A logit_bias key that is no token id gets a 400 whose message names the key."""
    # Banning a token (-100) is not asserted: the chat API gives no token ids to ban.
    exchanges = await asyncio.gather(
        *(ctx.chat(ctx.request(logit_bias={key: -100}, max_tokens=8)) for key, _ in _BAD_BIAS)
    )
    warning: CheckWarning | None = None
    for (key, what), exchange in zip(_BAD_BIAS, exchanges, strict=True):
        if exchange.status in (400, 422):
            said = exchange.body.decode("utf-8", "replace")
            if key not in said:
                raise CheckFailed(
                    f"the error for {what} in logit_bias does not name the key",
                    expected=f"a message naming {key!r}",
                    received=said[:300],
                    exchange=exchange,
                )
        elif exchange.status == 200 and not key.isdigit():
            # llama.cpp reads non-integer keys as token text; a documented extension.
            warning = CheckWarning(
                f"{what} in logit_bias was accepted",
                expected="400 naming the key",
                received="200",
                exchange=exchange,
            )
        else:
            raise CheckFailed(
                f"{what} in logit_bias was not refused",
                expected="400 naming the key",
                received=str(exchange.status or exchange.error),
                exchange=exchange,
            )
    if warning is not None:
        raise warning


_OUT_OF_RANGE = (("top_k", -5), ("min_p", 1.5), ("repetition_penalty", -1.0))


@check(group="response", capability="ext")
async def ext_sampling(ctx: Context) -> None:
    """top_k, min_p, repetition_penalty are top-level fields: top_k=1 at T=1 is greedy,
    out-of-range values get 400."""
    body = _counting(ctx, temperature=1.0, top_k=1, min_p=0.05, repetition_penalty=1.0)
    exchange = await ctx.chat(body)
    content, expected = _content(exchange), _content(await _greedy(ctx))
    if content != expected:
        await _deterministic(ctx)
        raise CheckFailed(
            "top_k=1 at temperature 1 did not give the temperature-0 answer",
            expected=repr(expected)[:300],
            received=repr(content)[:300],
            exchange=exchange,
        )
    bad = await asyncio.gather(
        *(ctx.chat(ctx.request(max_tokens=8, **{k: v})) for k, v in _OUT_OF_RANGE)
    )
    for (name, value), answer in zip(_OUT_OF_RANGE, bad, strict=True):
        require_refused(f"{name}={value}", answer)
