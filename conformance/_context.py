"""What a check works with: the endpoint, a shared HTTP session, and exchanges shared by
several checks so that a run spends as few requests as it can."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from jsonschema.exceptions import best_match

from chatcompat import schemas
from conformance._http import Endpoint, Exchange, send
from conformance._outcome import CheckSkipped
from conformance._sse import parse_events

__all__ = [
    "BASE_MESSAGES",
    "CHECK_SPEND",
    "WEATHER_TOOL",
    "Budget",
    "Context",
    "Spend",
    "retry_after",
    "tokens_of",
]

BASE_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello in one short sentence."},
]


_RETRY_STATUSES = (429,)
_MAX_RETRY_WAIT = 20.0  # seconds: a Retry-After longer than this is not waited for


def tokens_of(exchange: Exchange) -> int:
    """The tokens an exchange spent by its own usage report (0 when it gives none); a stream's
    is the last event whose JSON carries a usage object, read by the WHATWG rules
    (conformance._sse), so ``data:{`` without the space, CRLF and multi-line data count too."""
    if exchange.status != 200 or not exchange.body:
        return 0
    try:
        if exchange.content_type == "text/event-stream":
            usage: dict[str, Any] = {}
            for event in reversed(parse_events(exchange.body)[0]):
                if '"usage"' in event.data:
                    found = json.loads(event.data)
                    usage = (found.get("usage") if isinstance(found, dict) else None) or {}
                    if usage:
                        break
        else:
            usage = json.loads(exchange.body).get("usage") or {}
        total = usage.get("total_tokens", 0)
        return total if isinstance(total, int) else 0
    except (ValueError, AttributeError):
        return 0


def retry_after(exchange: Exchange) -> float | None:
    """Seconds a 429 asks to wait (retry-after-ms, else Retry-After in seconds), or None."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = exchange.headers.get(header)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


# The tool every tool-using check offers (a city's weather; "city" required).
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}


@dataclass
class Spend:
    """Requests and tokens one check spent (exchanges it shared count for the first asker)."""

    requests: int = 0
    tokens: int = 0


CHECK_SPEND: contextvars.ContextVar[Spend | None] = contextvars.ContextVar(
    "chatcompat_check_spend", default=None
)


@dataclass
class Budget:
    max_requests: int = 300
    max_tokens: int = 50_000
    max_examples: int = 20  # hypothesis examples per property / schemathesis operation and mode
    requests: int = 0
    tokens: int = 0
    retries: int = 0


@dataclass
class Context:
    endpoint: Endpoint
    session: aiohttp.ClientSession
    schema_level: schemas.Level = "compatible"
    budget: Budget = field(default_factory=Budget)
    _shared: dict[str, asyncio.Task[Exchange]] = field(default_factory=dict)

    def request(self, **overrides: Any) -> dict[str, Any]:
        """A small valid chat request for the model under test, with ``overrides`` applied."""
        body: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": copy.deepcopy(BASE_MESSAGES),
            "max_tokens": 64,
        }
        body.update(overrides)
        return body

    async def send(
        self, method: str, path: str, *, retry_429: bool = True, **kwargs: Any
    ) -> Exchange:
        """Send one request to the endpoint (see conformance._http.send), within the run's
        budget; a 429 is retried twice after the wait it asks for (unless ``retry_429`` is
        false, or it asks for more than 20 s)."""
        for attempt in range(3):
            if self.budget.requests >= self.budget.max_requests:
                raise CheckSkipped(
                    f"the run's budget of {self.budget.max_requests} requests is spent"
                )
            if self.budget.tokens >= self.budget.max_tokens:
                raise CheckSkipped(f"the run's budget of {self.budget.max_tokens} tokens is spent")
            self.budget.requests += 1
            exchange = await send(self.session, self.endpoint, method, path, **kwargs)
            tokens = tokens_of(exchange)
            self.budget.tokens += tokens
            spend = CHECK_SPEND.get()
            if spend is not None:
                spend.requests += 1
                spend.tokens += tokens
            wait = retry_after(exchange) if exchange.status in _RETRY_STATUSES else None
            if not retry_429 or wait is None or wait > _MAX_RETRY_WAIT or attempt == 2:
                return exchange
            self.budget.retries += 1
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def chat(self, body: Any = None, **kwargs: Any) -> Exchange:
        """POST /chat/completions."""
        return await self.send("POST", "/chat/completions", body=body, **kwargs)

    async def shared(self, key: str, make: Callable[[], Awaitable[Exchange]]) -> Exchange:
        """The exchange ``make`` produces, made once per run and shared by every check asking
        for ``key``."""
        if key not in self._shared:
            self._shared[key] = asyncio.ensure_future(make())
        return await asyncio.shield(self._shared[key])

    async def completion(self) -> Exchange:
        """The run's basic non-stream exchange."""
        return await self.shared("completion", lambda: self.chat(self.request()))

    async def stream(self) -> Exchange:
        """The run's basic stream exchange."""
        return await self.shared("stream", lambda: self.chat(self.request(stream=True)))

    def validate(self, name: str, instance: Any) -> str | None:
        """The first schema error of ``instance`` against schema ``name``, or None."""
        error = best_match(schemas.validator(name, self.schema_level).iter_errors(instance))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        message = error.message if len(error.message) < 300 else error.message[:300] + "..."
        return f"at {where}: {message}"
