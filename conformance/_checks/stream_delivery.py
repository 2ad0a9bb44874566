"""How a stream is delivered (group "stream"): the SSE framing it uses, and whether its events
come as they are made or all at the end."""

from __future__ import annotations

import asyncio
import bisect
import json
import statistics
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from conformance._checks.stream import complete_chunks
from conformance._context import Context
from conformance._http import Exchange
from conformance._outcome import CheckFailed
from conformance._registry import check
from conformance._sse import OPENAI_FRAMING, Event, parse_stream

__all__ = [
    "FRAMING_BREAKS",
    "StreamTiming",
    "sse_plain_framing",
    "stream_not_buffered",
    "stream_timing",
]

# Each valid framing variant OpenAI never sends: what it is, and clients reported to break on
# it (public issues and pull requests, owner/repo#number on GitHub).
FRAMING_BREAKS: dict[str, tuple[str, str]] = {
    "bom": (
        "a byte order mark opens the stream",
        "openai-python's SSEDecoder drops the first event (openai/openai-python#3819), "
        "assistant-ui (assistant-ui/assistant-ui#6954), eventsource-parser "
        "(rexxars/eventsource-parser#41)",
    ),
    "crlf": (
        "CRLF line ends",
        "hey-api SSE client (hey-api/hey-api#3054), Vercel AI SDK before 4.3 "
        "(vercel/ai#6200), inference-perf (kubernetes-sigs/inference-perf#781)",
    ),
    "cr": (
        "CR line ends",
        "openai-node's line decoder on mixed ends (openai/openai-node#2309), pentect "
        "(EdamAme-x/pentect#1438), OrcaRouter-Lite (Continuum-AI-Corp/OrcaRouter-Lite#98)",
    ),
    "comment": (
        "comment lines (keep-alives such as OpenRouter's ': OPENROUTER PROCESSING')",
        "ms-swift InferClient (modelscope/ms-swift#10086), shell_gpt (TheR1D/shell_gpt#358), "
        "dive (deepnoodle-ai/dive#206), lua-openai (leafo/lua-openai#7), symfony/ai "
        "(symfony/ai#1068)",
    ),
    "data-without-space": (
        "'data:' without the space",
        "openai-python before 0.28 (openai/openai-python#498), langchain_dart "
        "(davidmigloz/langchain_dart#778), genai-bench (sgl-project/genai-bench#159), "
        "inference-perf (kubernetes-sigs/inference-perf#781)",
    ),
    "multi-line-data": (
        "an event's data split over several data: lines",
        "term-llm (SamSaffron/term-llm#454), ruby-openai (alexrudall/ruby-openai#332), "
        "OpenMetadata's SSE client (open-metadata/OpenMetadata#28944)",
    ),
    "event": (
        "event: fields",
        "the Vercel AI SDK's openai-compatible provider reads every event as a chunk "
        "(anomalyco/opencode#38106, janhq/jan#8392); EventSource's onmessage sees only "
        "events named 'message'",
    ),
    "id": (
        "id: fields",
        "clients that read every non-blank line as data (ms-swift InferClient, "
        "modelscope/ms-swift#10086; AIClient2API, justlovemaki/AIClient2API#695)",
    ),
    "retry": (
        "retry: fields",
        "clients that read every non-blank line as data (ms-swift InferClient, "
        "modelscope/ms-swift#10086; AIClient2API, justlovemaki/AIClient2API#695)",
    ),
    "field-without-colon": (
        "a field line without a colon",
        "openai-ruby dropped such lines (openai/openai-ruby#631)",
    ),
    "unknown-field": (
        "fields the SSE format does not define (ignored by spec-following clients)",
        "clients that read every non-blank line as data (ms-swift InferClient, "
        "modelscope/ms-swift#10086)",
    ),
}


@check(group="stream", severity="should")
async def sse_plain_framing(ctx: Context) -> None:
    """A stream uses only the SSE framing OpenAI sends: one data: line per event, LF ends.
    No byte order mark, CRLF or CR line ends, comment lines, data: without the space, multi-line
    data, or id: / retry: / event: fields, all valid SSE (WHATWG event-stream rules) that the
    suite reads as a browser would.

    Hand-written SSE readers in many clients split on "\\n\\n" and parse each "data: " line as
    JSON: each of these variants has broken some of them (the warning names them)."""
    exchange = await ctx.stream()
    complete_chunks(exchange)  # a stream that did not start or end cannot be judged
    variants = parse_stream(exchange.body).variants
    if variants:
        raise CheckFailed(
            f"the stream uses SSE framing OpenAI never sends: {', '.join(variants)}",
            expected=OPENAI_FRAMING,
            received="; ".join(
                f"{FRAMING_BREAKS[name][0]} (line {line}), known to break: "
                f"{FRAMING_BREAKS[name][1]}"
                for name, line in variants.items()
            ),
            exchange=exchange,
        )


MIN_CONTENT_EVENTS = 24  # fewer content events cannot show whether the answer was streamed
MIN_DURATION = 0.25  # seconds from the headers to the end; a shorter stream cannot tell
LATE = 0.8  # the first content event after this share of the stream's duration is buffering
BUNCHED = 4  # ... and the content events came in at most a quarter as many reads as events
_TICK = 0.01  # seconds between the client's own wake-ups while it watches its event loop

T = TypeVar("T")


@dataclass(frozen=True)
class StreamTiming:
    """When a stream's content events arrived, as the client saw them (seconds from sending)."""

    headers: float  # the status and headers
    content: tuple[float, ...]  # each event that adds to a delta (text, reasoning, tool call)
    end: float  # the last byte

    @property
    def duration(self) -> float:
        """Seconds from the headers to the last byte."""
        return max(0.0, self.end - self.headers)

    @property
    def reads(self) -> int:
        """How many reads of the body the content events came in."""
        return len(set(self.content))

    @property
    def first_share(self) -> float:
        """How far into the stream's duration the first content event came (0 to 1)."""
        if not self.content or self.duration == 0:
            return 1.0
        return min(1.0, (self.content[0] - self.headers) / self.duration)

    def describe(self) -> str:
        """Time to first token and the inter-event gaps, in one line."""
        gaps = [b - a for a, b in zip(self.content, self.content[1:], strict=False)]
        text = (
            f"{len(self.content)} content events in {self.reads} reads; "
            f"headers at {self.headers:.3f} s, "
            f"time to first token {self.content[0] if self.content else self.end:.3f} s, "
            f"end at {self.end:.3f} s"
        )
        if gaps:
            text += (
                f"; inter-event gaps median {statistics.median(gaps):.3f} s, max {max(gaps):.3f} s"
            )
        return text


def _adds_content(event: Event) -> bool:
    """Whether ``event`` is a chunk whose choices add anything to a delta (role aside)."""
    try:
        chunk = json.loads(event.data)
    except ValueError:
        return False
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    for choice in choices if isinstance(choices, list) else []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and any(
            key != "role" and value not in (None, "", [], {}) for key, value in delta.items()
        ):
            return True
    return False


def stream_timing(exchange: Exchange) -> StreamTiming | None:
    """When ``exchange``'s content events arrived (each at the read that completed it), or None
    when the answer has no recorded headers or reads."""
    if exchange.headers_at is None or not exchange.arrivals:
        return None
    sizes = [size for size, _ in exchange.arrivals]
    content = []
    for event in parse_stream(exchange.body).events:
        if _adds_content(event):
            read = min(bisect.bisect_left(sizes, event.end), len(sizes) - 1)
            content.append(exchange.arrivals[read][1])
    return StreamTiming(exchange.headers_at, tuple(content), exchange.arrivals[-1][1])


async def _watching_the_loop(work: Awaitable[T]) -> tuple[T, float]:
    """``work``'s result and the longest the client's event loop was kept from running while it
    ran (seconds): a busy client reads late, and what it reads late looks bunched."""
    loop = asyncio.get_running_loop()
    woke, worst = loop.time(), 0.0

    async def watch() -> None:
        nonlocal woke, worst
        while True:
            await asyncio.sleep(_TICK)
            now = loop.time()
            worst, woke = max(worst, now - woke - _TICK), now

    watcher = asyncio.ensure_future(watch())
    try:
        result = await work
    finally:
        watcher.cancel()
    return result, max(worst, loop.time() - woke - _TICK)


@check(group="stream", severity="should")
async def stream_not_buffered(ctx: Context) -> None:
    """A stream's first content event comes early, not after most of the stream's time.
    For an answer of at least 24 content events, the first arrives before 80% of the time from
    the headers to the stream's end, or the events come one read at a time (a long time to
    first token, then a stream); arrival times are the client's own, relative to the
    stream's duration, and no verdict is given for a stream shorter than 0.25 s or one the
    client was too busy to watch (its event loop held up for half the duration).

    A server or proxy that buffers the answer and sends every event at the end (nginx
    without X-Accel-Buffering: no, a gateway that collects the stream) passes every format
    check, but its users wait for the whole answer: the point of streaming is lost."""
    body: dict[str, Any] = ctx.request(stream=True)
    exchange, held_up = await _watching_the_loop(ctx.chat(body))
    complete_chunks(exchange)  # a stream that did not start or end cannot be judged
    timing = stream_timing(exchange)
    if (
        timing is None
        or len(timing.content) < MIN_CONTENT_EVENTS
        or timing.duration < MIN_DURATION
        or held_up >= timing.duration / 2
    ):
        return  # too short, cut, or too busy a client to tell
    if timing.first_share > LATE and timing.reads <= len(timing.content) // BUNCHED:
        raise CheckFailed(
            f"the first content event came {timing.first_share:.0%} of the way through the "
            "stream: the answer was buffered and sent at the end",
            expected=f"the first content event within the first {LATE:.0%} of the stream",
            received=timing.describe(),
            exchange=exchange,
        )
