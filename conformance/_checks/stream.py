"""Stream framing and chunk checks (group "stream")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterator
from typing import Any

from conformance import _json as strict_json
from conformance._assertions import chunks_of, is_prompt_filter_chunk, json_body, require_status
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed
from conformance._registry import check
from conformance._sse import parse_events

__all__ = [
    "FINISH_REASONS",
    "by_index",
    "chunk_meta_stable",
    "chunk_schema",
    "complete_chunks",
    "delta_of",
    "delta_present",
    "finish_empty_delta",
    "finish_once",
    "finish_position",
    "finish_reason_in_every_chunk",
    "greedy",
    "greedy_stream",
    "no_empty_choices_unless_usage",
    "no_prompt_filter_chunk",
    "nothing_after_finish",
    "role_first_only",
    "sse_done",
    "stream_eq_nonstream",
    "text_of",
]


@check(group="stream", severity="must")
async def sse_done(ctx: Context) -> None:
    """A stream is text/event-stream of data events, JSON objects each, closed by data: [DONE].
    The Content-Type is text/event-stream; the events are data: lines separated by blank lines, each
    a JSON object, none framed as event: error; the last is exactly data: [DONE], and the stream
    ends cleanly.

    Every client's SSE reader (the SDKs', EventSource polyfills) splits on blank lines, parses
    each data line as JSON and stops at [DONE]; anything else is a parse error in the middle of an
    answer."""
    exchange = await ctx.stream()
    require_status(exchange, 200)
    if exchange.content_type != "text/event-stream":
        raise CheckFailed(
            "wrong Content-Type for a stream",
            expected="text/event-stream",
            received=exchange.content_type or "(none)",
            exchange=exchange,
        )
    if exchange.error:
        raise CheckFailed(
            "the stream did not end cleanly", received=exchange.error, exchange=exchange
        )
    events, problems = parse_events(exchange.body)
    if problems:
        raise CheckFailed("SSE framing is broken", received="; ".join(problems), exchange=exchange)
    if not events:
        raise CheckFailed("the stream holds no event", exchange=exchange)
    for position, event in enumerate(events):
        if event.event == "error":
            raise CheckFailed(
                f"event {position} uses 'event: error' framing",
                expected='errors as data: {"error": {...}} events',
                received=event.data[:200],
                exchange=exchange,
            )
    *body_events, last = events
    if last.data != "[DONE]":
        raise CheckFailed(
            "the last event is not [DONE]",
            expected="data: [DONE]",
            received=f"data: {last.data[:200]}",
            exchange=exchange,
        )
    for position, event in enumerate(body_events):
        if event.data == "[DONE]":
            raise CheckFailed(
                f"event {position} is [DONE] but more events follow", exchange=exchange
            )
        try:
            value = strict_json.loads(event.data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise CheckFailed(
                f"event {position} (line {event.line}) is not a JSON object",
                expected="a chat.completion.chunk object",
                received=f"data: {event.data[:200]}",
                exchange=exchange,
            )


@check(group="stream", severity="must")
async def chunk_schema(ctx: Context) -> None:
    """Every chunk of a stream validates against the chat.completion.chunk schema.
    Each JSON chunk of the run's basic stream validates at the run's schema level (compatible by
    default, OpenAI's published one with --schema-level strict)."""
    exchange = await ctx.stream()
    _, chunks = chunks_of(exchange)
    for position, chunk in enumerate(chunks):
        error = ctx.validate("chat-completion-chunk", chunk)
        if error:
            raise CheckFailed(
                f"chunk {position} does not match the chat.completion.chunk schema "
                f"({ctx.schema_level})",
                received=error,
                exchange=exchange,
            )


@check(group="stream", severity="must")
async def chunk_meta_stable(ctx: Context) -> None:
    """Every chunk says object chat.completion.chunk, with the same id, created and model.
    Every chunk has object chat.completion.chunk and an integer created, and repeats the first
    chunk's id, created, model and system_fingerprint (when the first has one).

    Clients group the chunks of one answer by id and take created and model from any chunk."""
    exchange = await ctx.stream()
    _, chunks = chunks_of(exchange)
    first = chunks[0]
    if not isinstance(first.get("created"), int) or isinstance(first.get("created"), bool):
        raise CheckFailed(
            "created is not an integer",
            expected="unix seconds as an integer",
            received=repr(first.get("created")),
            exchange=exchange,
        )
    for position, chunk in enumerate(chunks):
        if chunk.get("object") != "chat.completion.chunk":
            raise CheckFailed(
                f"chunk {position} has the wrong object",
                expected="chat.completion.chunk",
                received=repr(chunk.get("object")),
                exchange=exchange,
            )
        for key in ("id", "created", "model", "system_fingerprint"):
            if key == "system_fingerprint" and key not in first:
                continue
            if chunk.get(key) != first.get(key):
                raise CheckFailed(
                    f"{key} changes within the stream at chunk {position}",
                    expected=repr(first.get(key)),
                    received=repr(chunk.get(key)),
                    exchange=exchange,
                )


FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")
GREEDY_MAX_TOKENS = 16


def greedy(ctx: Context) -> Awaitable[Exchange]:
    """The run's non-stream exchange at temperature 0 with a seed (short: it may end in
    "length"), shared by the checks that compare stream and non-stream answers."""
    body = ctx.request(temperature=0, seed=1234, max_tokens=GREEDY_MAX_TOKENS)
    return ctx.shared("greedy", lambda: ctx.chat(body))


def greedy_stream(ctx: Context) -> Awaitable[Exchange]:
    """The stream twin of :func:`greedy`, with ``stream_options.include_usage``."""
    body = ctx.request(
        temperature=0,
        seed=1234,
        max_tokens=GREEDY_MAX_TOKENS,
        stream=True,
        stream_options={"include_usage": True},
    )
    return ctx.shared("greedy-stream", lambda: ctx.chat(body))


def complete_chunks(exchange: Exchange, *, prompt_filters: bool = False) -> list[dict[str, Any]]:
    """The JSON chunks of a stream that ended cleanly (a stream cut short cannot be judged)."""
    _, chunks = chunks_of(exchange, prompt_filters=prompt_filters)
    if exchange.error:
        raise CheckFailed(
            "the stream did not end cleanly, so its chunks cannot be judged",
            expected="a whole stream, closed after data: [DONE]",
            received=exchange.error,
            exchange=exchange,
        )
    return chunks


def by_index(chunks: list[dict[str, Any]]) -> dict[int, list[tuple[int, dict[str, Any]]]]:
    """Each choice index of a stream with its (chunk position, choice) pairs, in stream order;
    choices that are not objects with an integer index are left out (chunk_schema's job)."""
    seen: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for position, chunk in enumerate(chunks):
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            index = choice.get("index") if isinstance(choice, dict) else None
            if isinstance(index, int) and not isinstance(index, bool):
                seen.setdefault(index, []).append((position, choice))
    return seen


def delta_of(choice: dict[str, Any]) -> dict[str, Any]:
    """A streamed choice's delta, {} when it has none (delta_present reports that)."""
    delta = choice.get("delta")
    return delta if isinstance(delta, dict) else {}


def text_of(choice: dict[str, Any]) -> str:
    """The content a streamed choice adds ("" for none)."""
    content = delta_of(choice).get("content")
    return content if isinstance(content, str) else ""


def finish_position(entries: list[tuple[int, dict[str, Any]]]) -> int | None:
    """Where in ``entries`` the first non-null finish_reason is, or None."""
    return next((i for i, (_, c) in enumerate(entries) if c.get("finish_reason") is not None), None)


async def _choices_of(ctx: Context) -> tuple[Exchange, dict[int, list[tuple[int, dict[str, Any]]]]]:
    return _indices(await ctx.stream())


def _finished(
    indices: dict[int, list[tuple[int, dict[str, Any]]]],
) -> Iterator[tuple[int, int, list[tuple[int, dict[str, Any]]]]]:
    """Each choice that finishes: its index, the place of its finish chunk among its entries, and
    the entries (a choice that never finishes is finish_once's to report)."""
    for index, entries in indices.items():
        finish = finish_position(entries)
        if finish is not None:
            yield index, finish, entries


def _indices(exchange: Exchange) -> tuple[Exchange, dict[int, list[tuple[int, dict[str, Any]]]]]:
    """``exchange`` and its chunks' choices by index, or a failure when no chunk has one."""
    chunks = complete_chunks(exchange)
    indices = by_index(chunks)
    if not indices:
        raise CheckFailed(
            "no chunk of the stream carries a choice",
            expected="choices with an integer index",
            received=f"{len(chunks)} chunks",
            exchange=exchange,
        )
    return exchange, indices


@check(group="stream", severity="must")
async def role_first_only(ctx: Context) -> None:
    """The first delta of each choice says role "assistant"; later deltas leave role out.
    Later deltas may say role null instead of leaving it out.

    Clients that build a message from deltas start one at each role: a repeated role starts a new
    message in the middle of the answer."""
    exchange, indices = await _choices_of(ctx)
    for index, entries in indices.items():
        (position, first), *rest = entries
        if delta_of(first).get("role") != "assistant":
            raise CheckFailed(
                f"the first delta of choice {index} (chunk {position}) has no assistant role",
                expected='delta.role == "assistant"',
                received=json.dumps(first.get("delta"))[:200],
                exchange=exchange,
            )
        for position, choice in rest:
            if delta_of(choice).get("role") is not None:
                raise CheckFailed(
                    f"chunk {position} repeats the role of choice {index}",
                    expected="role only in the first delta of a choice",
                    received=json.dumps(choice.get("delta"))[:200],
                    exchange=exchange,
                )


@check(group="stream", severity="must")
async def delta_present(ctx: Context) -> None:
    """Every choice of every chunk has a delta object, possibly {}.
    The finish chunk's choice too carries a delta, empty or not.

    Clients read choices[i].delta.content on every chunk; a choice without a delta is an
    attribute error in the SDKs' typed chunks."""
    exchange = await ctx.stream()
    chunks = complete_chunks(exchange)
    for position, chunk in enumerate(chunks):
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
                raise CheckFailed(
                    f"a choice of chunk {position} has no delta object",
                    expected='"delta": {...} in every choice (clients read choices[0].delta)',
                    received=json.dumps(choice)[:200],
                    exchange=exchange,
                )


@check(group="stream", severity="must")
async def finish_once(ctx: Context) -> None:
    """Each choice finishes exactly once, with stop, length, tool_calls or content_filter.
    Each choice has exactly one chunk with a non-null finish_reason, one of stop, length,
    tool_calls, content_filter (never ""); every other chunk of the choice says null.

    Clients end a choice at its first finish_reason and map the value to what happened: a second
    finish or an unknown value ends it twice or not at all."""
    exchange, indices = await _choices_of(ctx)
    for index, entries in indices.items():
        finishes = [
            (p, c["finish_reason"]) for p, c in entries if c.get("finish_reason") is not None
        ]
        for position, reason in finishes:
            if reason not in FINISH_REASONS:
                raise CheckFailed(
                    f"chunk {position} gives choice {index} finish_reason {reason!r}",
                    expected=f"null until the end, then one of {', '.join(FINISH_REASONS)}",
                    received=repr(reason),
                    exchange=exchange,
                )
        if len(finishes) != 1:
            raise CheckFailed(
                f"choice {index} has {len(finishes)} chunks with a finish_reason",
                expected="exactly one",
                received=", ".join(f"chunk {p}: {r!r}" for p, r in finishes) or "none",
                exchange=exchange,
            )


@check(group="stream", severity="must")
async def nothing_after_finish(ctx: Context) -> None:
    """No content or tool-call delta comes for a choice after its finish chunk.
    Once a choice's finish_reason came, no later chunk adds content or tool-call deltas to it.

    Clients stop reading a choice at its finish: what comes after is lost."""
    exchange, indices = await _choices_of(ctx)
    for index, finish, entries in _finished(indices):
        for position, choice in entries[finish + 1 :]:
            if text_of(choice) or delta_of(choice).get("tool_calls"):
                raise CheckFailed(
                    f"chunk {position} adds to choice {index} after its finish chunk "
                    f"(chunk {entries[finish][0]})",
                    expected="nothing for a choice after its finish_reason",
                    received=json.dumps(choice.get("delta"))[:200],
                    exchange=exchange,
                )


@check(group="stream", severity="should")
async def finish_empty_delta(ctx: Context) -> None:
    """The finish chunk's delta is empty: {} or {"content": ""}.
    The chunk that carries a choice's finish_reason has a delta with nothing in it (role aside):
    {}, or content "".

    OpenAI sends the finish_reason in a chunk of its own; servers that put the last piece of text
    in the finish chunk (Novita) are read right by the SDKs, but clients that act on the
    finish_reason before the delta drop that text. Seen in the basic stream and in a greedy one
    cut at max_tokens 4: vLLM puts the last text beside "length" only, and a sampled answer may
    end either way."""
    streams = await asyncio.gather(
        ctx.stream(),
        ctx.shared(
            "stream:cut", lambda: ctx.chat(ctx.request(stream=True, temperature=0, max_tokens=4))
        ),
    )
    for exchange in streams:
        _require_empty_finish(*_indices(exchange))


def _require_empty_finish(
    exchange: Exchange, indices: dict[int, list[tuple[int, dict[str, Any]]]]
) -> None:
    """Fail unless each finish chunk's delta carries nothing (role aside)."""
    for index, finish, entries in _finished(indices):
        position, choice = entries[finish]
        carried = sorted(
            key
            for key, value in delta_of(choice).items()
            if key != "role" and value not in (None, "", [], {})
        )
        if carried:
            raise CheckFailed(
                f"the finish chunk of choice {index} (chunk {position}) carries "
                f"{', '.join(carried)}",
                expected='a finish chunk whose delta is {} or {"content": ""}',
                received=json.dumps(choice.get("delta"))[:200],
                exchange=exchange,
            )


@check(group="stream", severity="should")
async def finish_reason_in_every_chunk(ctx: Context) -> None:
    """Every choice of every chunk carries finish_reason, null until its finish chunk.
    Each choice object in the basic stream has the finish_reason key: null before the choice
    finishes, then its reason.

    OpenAI sends the key in every chunk (its schema requires it, nullable). The Python SDK reads
    a missing key as None, but a client that tests `finish_reason !== null` in JavaScript (where
    a missing key is undefined) takes the first chunk for the last; LibreChat added the key back
    for providers that leave it out (danny-avila/LibreChat#5563: AWS Bedrock; also reported of
    the LiteLLM proxy), and transformers serve leaves it out too."""
    exchange, indices = _indices(await ctx.stream())
    for index, entries in indices.items():
        for position, choice in entries:
            if "finish_reason" not in choice:
                raise CheckFailed(
                    f"choice {index} of chunk {position} has no finish_reason key",
                    expected="finish_reason in every choice: null, or the reason it finished",
                    received=json.dumps(choice)[:200],
                    exchange=exchange,
                )


@check(group="stream", severity="must")
async def no_empty_choices_unless_usage(ctx: Context) -> None:
    """A chunk has choices [] only when it is the usage chunk.
    choices [] comes only in the chunk that carries the usage; Azure's prompt-filter-only chunks
    are left to no_prompt_filter_chunk.

    Clients that read chunk.choices[0] on every chunk (many hand-written SSE readers) crash on an
    empty list; the SDKs' own usage chunk is the one exception they expect."""
    exchange = await ctx.stream()
    for position, chunk in enumerate(complete_chunks(exchange, prompt_filters=True)):
        if is_prompt_filter_chunk(chunk):
            continue  # no_prompt_filter_chunk's business
        if chunk.get("choices") == [] and not isinstance(chunk.get("usage"), dict):
            raise CheckFailed(
                f"chunk {position} has choices [] and no usage",
                expected="choices [] only in the usage chunk (clients index choices[0])",
                received=json.dumps(chunk)[:200],
                exchange=exchange,
            )


@check(group="stream", severity="should")
async def no_prompt_filter_chunk(ctx: Context) -> None:
    """A stream has no chunk that carries only Azure's prompt_filter_results.
    No chunk has choices [] with prompt_filter_results and no usage (Azure OpenAI leads its
    streams with one).

    The official SDKs skip such a chunk, but clients that index choices[0] on every chunk break
    on it; Azure sends it, so it is a recommendation, not a requirement."""
    exchange = await ctx.stream()
    chunks = complete_chunks(exchange, prompt_filters=True)
    filters = [p for p, chunk in enumerate(chunks) if is_prompt_filter_chunk(chunk)]
    if filters:
        raise CheckFailed(
            f"chunk(s) {filters} carry only Azure-style prompt_filter_results with choices []",
            expected="choices [] only in the usage chunk: the official SDKs skip these chunks, "
            "clients that index choices[0] break on them",
            received=json.dumps(chunks[filters[0]])[:200],
            exchange=exchange,
        )


@check(group="stream", severity="must")
async def stream_eq_nonstream(ctx: Context) -> None:
    """At temperature 0 with a seed, the joined deltas equal the non-stream answer.
    The content deltas of the greedy stream join to the non-stream content of the same request, and
    the finish_reason is the same.

    A client should get the same answer whether it streams or not; a stream that drops, repeats or
    reorders text shows up here."""
    plain, streamed = await asyncio.gather(greedy(ctx), greedy_stream(ctx))
    require_status(plain, 200)
    body = json_body(plain)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CheckFailed(
            "the non-stream answer has no choice",
            expected="choices[0]",
            received=json.dumps(body)[:200],
            exchange=plain,
        )
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    chunks = complete_chunks(streamed)
    entries = by_index(chunks).get(0, [])
    joined = "".join(text_of(c) for _, c in entries)
    if joined != (content or ""):
        raise CheckFailed(
            "the streamed text differs from the non-stream text of the same greedy request",
            expected=repr(content),
            received=repr(joined),
            exchange=streamed,
            pair=plain,
        )
    finish = finish_position(entries)
    reason = entries[finish][1]["finish_reason"] if finish is not None else None
    if reason != choices[0].get("finish_reason"):
        raise CheckFailed(
            "the stream's finish_reason differs from the non-stream one",
            expected=repr(choices[0].get("finish_reason")),
            received=repr(reason),
            exchange=streamed,
            pair=plain,
        )
