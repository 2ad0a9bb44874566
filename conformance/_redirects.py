"""Redirects the endpoint answered with: which, and whether they led to another origin.

The suite follows redirects as the official clients do (openai-python's httpx client sets
``follow_redirects=True``): up to 10, the method and body kept for 307/308, POST turned into GET
for 301/302/303 (aiohttp's rules). aiohttp drops the Authorization header (and cookies) when a
redirect leads to another origin (scheme, host or port), so the key is never sent there. Every
redirect is recorded on its exchange and, for the whole command, in :data:`SEEN`: the answers
judged then came from where the redirect led, and the reports say so. One collector serves
every request ``chatcompat check`` sends: the model listing (without ``--model``), the probe
and the checks.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from conformance._shown import inline, redact

__all__ = ["SEEN", "Redirect", "distinct", "note", "redirects_of", "watching"]


@dataclass(frozen=True)
class Redirect:
    """One redirect: its status, the request's method, where from and where to."""

    status: int
    method: str
    source: str  # the URL that answered with the redirect
    target: str  # the URL it led to (resolved)

    @property
    def cross_origin(self) -> bool:
        """Whether the target is another origin (scheme, host or port) than the source."""
        return _origin(self.source) != _origin(self.target)

    def describe(self, quote: Callable[[str], str] = inline) -> str:
        """``307 POST http://a/v1/x -> http://b/v1/x (another origin: the key was not sent)``,
        each URL (what the server sent) written by ``quote``: on one line, control characters
        escaped (:func:`~conformance._shown.inline`), unless told otherwise (a Markdown code
        span: :func:`~conformance._shown.markdown_code`)."""
        source, target = quote(self.source), quote(self.target)
        text = f"{self.status} {self.method} {source} -> {target}"
        if self.cross_origin:
            text += " (another origin: the API key was not sent there)"
        return text

    def as_json(self) -> dict[str, Any]:
        """``{"status", "method", "from", "to", "cross_origin"}``; the URLs on one line, control
        characters escaped (:func:`~conformance._shown.inline`)."""
        return {
            "status": self.status,
            "method": self.method,
            "from": inline(self.source),
            "to": inline(self.target),
            "cross_origin": self.cross_origin,
        }

    def redacted(self, secret: str | None) -> Redirect:
        """This redirect with ``secret`` redacted from both URLs."""
        source, target = redact(self.source, secret), redact(self.target, secret)
        return Redirect(self.status, self.method, source, target)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or ""), port


SEEN: contextvars.ContextVar[list[Redirect] | None] = contextvars.ContextVar(
    "chatcompat_redirects_seen", default=None
)


@contextlib.contextmanager
def watching() -> Iterator[list[Redirect]]:
    """The list every redirect an exchange sees while the block runs is added to (tasks and
    threads started inside it share it). Inside another watch, that watch's list: one collector
    for a whole command (``chatcompat check``: its model listing, its probe and its run)."""
    seen = SEEN.get()
    if seen is not None:
        yield seen
        return
    seen = []
    token = SEEN.set(seen)
    try:
        yield seen
    finally:
        SEEN.reset(token)


def redirects_of(response: Any) -> tuple[Redirect, ...]:
    """The redirects an aiohttp ``ClientResponse`` went through (its ``history``), in order."""
    hops = [*response.history, response]
    return tuple(
        Redirect(hop.status, hop.method, str(hop.url), str(after.url))
        for hop, after in itertools.pairwise(hops)
    )


def note(redirects: Sequence[Redirect]) -> None:
    """Add ``redirects`` to :data:`SEEN` when a watch is on (see :func:`watching`)."""
    seen = SEEN.get()
    if seen is not None:
        seen.extend(redirects)


def distinct(redirects: Sequence[Redirect]) -> list[Redirect]:
    """``redirects`` without repeats, in the order first seen."""
    return list(dict.fromkeys(redirects))
