"""What a check works with: the endpoint, a shared HTTP session, and exchanges shared by
several checks so that a run spends as few requests as it can."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from jsonschema.exceptions import best_match

from chatcompat import schemas
from conformance._http import Endpoint, Exchange, send

__all__ = ["Context"]

BASE_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello in one short sentence."},
]


@dataclass
class Context:
    endpoint: Endpoint
    session: aiohttp.ClientSession
    schema_level: schemas.Level = "compatible"
    requests_sent: int = 0
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

    async def send(self, method: str, path: str, **kwargs: Any) -> Exchange:
        """Send one request to the endpoint (see conformance._http.send)."""
        self.requests_sent += 1
        return await send(self.session, self.endpoint, method, path, **kwargs)

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
