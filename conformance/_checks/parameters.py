"""Request parameter checks (group "response"): stop strings, logit_bias keys and the extra
sampling fields (top_k, min_p, repetition_penalty) do what they say, and wrong values are
refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from conformance._assertions import ANSWERED, REFUSED, require_refused, require_status_in
from conformance._checks.response import (
    counting,
    first_choice,
    greedy_counting,
    message_content,
    require_greedy_answer,
    skip_unless_deterministic,
    streamed_text,
)
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed, CheckSkipped
from conformance._registry import check

__all__ = [
    "FIVE_STOPS",
    "ext_sampling",
    "five_stops",
    "logit_bias",
    "logit_bias_text_key_refused",
    "stop",
    "stop_over_four_refused",
]


def _stop_in(text: str) -> str | None:
    """A stop string from the middle of ``text`` that spans token boundaries, or None."""
    if len(text) < 16:
        return None
    start = len(text) // 2
    stop = text[start : start + 6]
    return stop if stop.strip() and text.find(stop) > 0 else None


def _stop_start_in(content: object, expected: str, stop: str) -> str:
    """The start of ``stop`` that ``content`` holds after the ``expected`` text before it (a
    partial match sent before the server saw the rest), or ""."""
    if not isinstance(content, str) or not content.startswith(expected):
        return ""
    tail = content[len(expected) :]
    return tail if tail and stop.startswith(tail) else ""


FIVE_STOPS = ["a1", "b2", "c3", "d4", "e5"]  # one more than OpenAI allows


def five_stops(ctx: Context) -> Awaitable[Exchange]:
    """The run's answer to a request with five stop strings (OpenAI allows 4), sent once."""
    body = ctx.request(stop=FIVE_STOPS, max_tokens=8)
    return ctx.shared("response:five-stops", lambda: ctx.chat(body))


@check(group="response", severity="must")
async def stop(ctx: Context) -> None:
    """A stop string ends the answer with "stop" and is left out, streamed too; 5 stops no 5xx.
    A stop string cut from the middle of the temperature-0 answer (spanning tokens) ends the
    answer with finish_reason "stop" and is left out of it, streamed and not; a request with
    five stop strings gets no 5xx.

    Clients stop a model at their own delimiters (ReAct's "Observation:", a chat template's end
    marker); a stop string left in the text, or one that does not stop the answer, breaks their
    parsing. Whether five are refused is stop_over_four_refused's. A failure says when the start
    of the stop string was sent before the answer ended (a partial match flushed early)."""
    full = message_content(await greedy_counting(ctx))
    cut = _stop_in(full) if isinstance(full, str) else None
    if cut is None:
        raise CheckSkipped(f"inconclusive: the temperature-0 answer is too short: {full!r}")
    expected = full[: full.find(cut)]
    plain, streamed = await asyncio.gather(
        ctx.chat(counting(ctx, stop=[cut])), ctx.chat(counting(ctx, stop=[cut], stream=True))
    )
    plain_choice = first_choice(plain)
    answers = [
        (
            plain,
            (plain_choice.get("message") or {}).get("content"),
            plain_choice.get("finish_reason"),
        ),
        (streamed, *streamed_text(streamed)),
    ]
    for exchange, content, finish in answers:
        if isinstance(content, str) and cut in content:
            raise CheckFailed(
                f"the stop string {cut!r} is in the answer",
                expected=repr(expected)[:300],
                received=repr(content)[:300],
                exchange=exchange,
                about=("stop",),
            )
        if not isinstance(content, str) or not full.startswith(content.rstrip()):
            await skip_unless_deterministic(ctx)
        leak = _stop_start_in(content, expected, cut)
        if leak:
            raise CheckFailed(
                f"the start of the stop string {cut!r} appeared in the output: {leak!r}",
                expected=f"{expected!r} without {leak!r}"[:300],
                received=f"{content!r} with finish_reason {finish!r}"[:300],
                exchange=exchange,
                about=("stop",),
            )
        if finish != "stop" or not isinstance(content, str) or len(content) > len(expected):
            raise CheckFailed(
                f"the stop string {cut!r} did not end the answer",
                expected=f'{expected!r} with finish_reason "stop"'[:300],
                received=f"{content!r} with finish_reason {finish!r}"[:300],
                exchange=exchange,
                about=("stop",),
            )
    many = await five_stops(ctx)
    broke = "five stop strings broke the server"
    require_status_in(broke, many, ANSWERED, expected="400 (or an answer)", about=("stop",))


@check(group="response", severity="should")
async def stop_over_four_refused(ctx: Context) -> None:
    """More than 4 stop strings get 400, as OpenAI allows at most 4.
    A request with five stop strings gets 400 (or 422).

    OpenAI refuses a fifth stop string; vLLM and llama.cpp take any number, so a client written
    against them fails on OpenAI. Accepting more is allowed, not advised."""
    require_status_in(
        "five stop strings were not refused (OpenAI allows at most 4)",
        await five_stops(ctx),
        REFUSED,
        expected="400",
        about=("stop",),
    )


_TEXT_KEY = ("hello", "a non-integer key")
_BAD_BIAS = (_TEXT_KEY, ("987654321", "an out-of-vocabulary token id"))


def _biased(ctx: Context, key: str) -> Awaitable[Exchange]:
    """The run's answer to a request whose logit_bias has the one ``key``, sent once."""
    body = ctx.request(logit_bias={key: -100}, max_tokens=8)
    return ctx.shared(f"response:logit-bias:{key}", lambda: ctx.chat(body))


@check(group="response", severity="must")
async def logit_bias(ctx: Context) -> None:
    """A logit_bias key that is no token id is refused naming the key, never with a 5xx.
    An out-of-vocabulary token id gets 400 (or 422) whose message names the key; a non-integer
    key gets the same, or 200 (llama.cpp reads it as token text); neither gets a 5xx. Banning a
    token (-100) is not asserted: the API gives no token ids to ban.

    A bias on a token the model does not have does nothing, so a client that sent it learns of
    its mistake only from the refusal; a message naming the key says which one."""
    exchanges = await asyncio.gather(*(_biased(ctx, key) for key, _ in _BAD_BIAS))
    for (key, what), exchange in zip(_BAD_BIAS, exchanges, strict=True):
        if exchange.status in REFUSED:
            said = exchange.body.decode("utf-8", "replace")
            if key not in said:
                raise CheckFailed(
                    f"the error for {what} in logit_bias does not name the key",
                    expected=f"a message naming {key!r}",
                    received=said[:300],
                    exchange=exchange,
                )
        else:  # a non-integer key may be read as token text: answered, then
            answered = () if key.isdigit() else (200,)
            require_status_in(
                f"{what} in logit_bias was not refused", exchange, answered, "400 naming the key"
            )


@check(group="response", severity="should")
async def logit_bias_text_key_refused(ctx: Context) -> None:
    """A logit_bias key that is not an integer gets 400.
    A logit_bias whose key is "hello" (not a token id) gets 400 (or 422).

    OpenAI's keys are token ids; llama.cpp reads other keys as token text and biases the tokens
    of that text, a documented extension: allowed, but a request that relies on it means
    something else on every other server."""
    key, what = _TEXT_KEY
    require_status_in(
        f"{what} in logit_bias was not refused",
        await _biased(ctx, key),
        REFUSED,
        expected="400 (or 422)",
    )


_OUT_OF_RANGE = (("top_k", -5), ("min_p", 1.5), ("repetition_penalty", -1.0))


@check(group="response", severity="must", capability="ext")
async def ext_sampling(ctx: Context) -> None:
    """top_k, min_p and repetition_penalty are top-level fields, and out-of-range values get 400.
    top_k 1, min_p 0.05 and repetition_penalty 1 at temperature 1 give the temperature-0
    answer; top_k -5, min_p 1.5 and repetition_penalty -1 each get 400 (or 422).

    vLLM, SGLang and llama.cpp take these as top-level fields of the chat request (the OpenAI
    SDKs send them through extra_body); a server that drops them silently samples otherwise
    than asked."""
    body = counting(ctx, temperature=1.0, top_k=1, min_p=0.05, repetition_penalty=1.0)
    await require_greedy_answer(
        ctx, await ctx.chat(body), "top_k=1 at temperature 1 did not give the temperature-0 answer"
    )
    bad = await asyncio.gather(
        *(ctx.chat(ctx.request(max_tokens=8, **{k: v})) for k, v in _OUT_OF_RANGE)
    )
    for (name, value), answer in zip(_OUT_OF_RANGE, bad, strict=True):
        require_refused(f"{name}={value}", answer)
