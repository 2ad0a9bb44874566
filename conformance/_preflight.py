"""The preflight of ``chatcompat check``: before any check, one ``GET {base}/models`` and one
minimal chat request say whether the run can start at all, and which model it tests when no
``--model`` is given. What stops it is one message (:class:`CannotStart`, exit status 2): the
host cannot be reached, there is no chat route at the base URL, the key is missing or refused,
the model is not served. Any other answer (5xx, 400, 429, slow) is a one-line warning: the
checks judge it."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from conformance._context import tokens_of
from conformance._http import Endpoint, Exchange, send
from conformance._shown import shown

__all__ = [
    "CHAT_PROMPT",
    "CannotStart",
    "Listing",
    "Preflight",
    "first_listed_model",
    "listed_models",
    "listing_problem",
    "model_listing",
    "preflight",
    "reachable",
]

CHAT_PROMPT = "Say OK."  # the preflight chat's one user message (max_tokens 1)
ROUTE_HINT = "the base URL should include the API prefix, e.g. /v1"
NEEDS_KEY = "the endpoint requires an API key: set $CHATCOMPAT_API_KEY or --api-key"
REFUSED_KEY = "the endpoint refused the API key"
MAX_PAGES = 5  # of GET /models, followed while they list no model and say has_more
GUESS_TIMEOUT = 5.0  # seconds for each GET /models at a guessed prefix
# aiohttp's errors for a connection that could not be made (refused, DNS, TLS): the host is
# unreachable. A timeout after the TCP connection opened (reachable() saw it open) is not.
_CONNECT_ERRORS = frozenset(
    cls.__name__
    for cls in (
        aiohttp.ClientConnectorError,
        aiohttp.ClientConnectorDNSError,
        aiohttp.ClientConnectorSSLError,
        aiohttp.ClientConnectorCertificateError,
        aiohttp.ClientSSLError,
        aiohttp.ServerFingerprintMismatch,
    )
)


class CannotStart(Exception):
    """The run cannot start; the message says why, on one line (exit status 2)."""


@dataclass(frozen=True)
class Listing:
    """What ``GET {base}/models`` answered: its pages in order, the models they list."""

    pages: tuple[Exchange, ...]
    models: tuple[str, ...]

    @property
    def last(self) -> Exchange:
        """The last page asked for (the only one, unless the first listed nothing)."""
        return self.pages[-1]


@dataclass(frozen=True)
class Preflight:
    """What the preflight found: the run's model and what it spent."""

    model: str  # --model, else the first listed
    requests: int  # sent: the listing's pages and the chat request
    tokens: int  # by the chat answer's usage
    warning: str | None = None  # one line, when the chat answer was not a 200 in time


def reachable(base_url: str, timeout: float = 5.0) -> str | None:
    """None when a TCP connection to ``base_url``'s host opens within ``timeout`` seconds,
    else why not (not an http(s) URL, refused, DNS, timed out)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--base-url must be an http(s) URL, got {base_url!r}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot connect to {parts.hostname}:{port}: {exc}"


def _entries(data: Any) -> list[Any]:
    """The entries of a model listing in any of the shapes :func:`listed_models` reads."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        return []
    for key in ("data", "models"):
        if isinstance(data.get(key), list) and data[key]:
            return list(data[key])
    return [data] if isinstance(data.get("id"), str) else []


def listed_models(data: Any) -> list[str]:
    """The model ids a parsed ``GET /models`` answer lists, in its order, each once: OpenAI's
    ``{"data": [{"id": ...}]}``, wherever ``data`` sits among the keys, and the shapes servers
    send beside it: a bare list (Together AI), ``{"models": [...]}`` (Ollama, Cohere; llama.cpp
    sends it beside ``data``), one model object (TGI), entries that are plain strings, and
    entries without an ``id`` that name the model by ``model`` or ``name``. Entries with none
    of these are passed over."""
    ids: list[str] = []
    for entry in _entries(data):
        if isinstance(entry, dict):
            entry = next((entry[k] for k in ("id", "model", "name") if entry.get(k)), None)
        if isinstance(entry, str) and entry and entry not in ids:
            ids.append(entry)
    return ids


def _next_page(exchange: Exchange) -> str | None:
    """The path of the next page of a listing that says ``has_more`` (OpenAI's and Anthropic's
    cursor: ``after`` the ``last_id``), else None."""
    try:
        data = exchange.json() if exchange.status == 200 else None
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("has_more") is True:
        last = data.get("last_id")
        if isinstance(last, str) and last:
            return f"/models?after={last}"
    return None


def _parsed(exchange: Exchange) -> list[str]:
    try:
        return listed_models(exchange.json()) if exchange.status == 200 else []
    except ValueError:
        return []


async def model_listing(session: aiohttp.ClientSession, endpoint: Endpoint) -> Listing:
    """``GET {base}/models`` with ``endpoint``'s key and timeouts, and while a page lists no
    model and says ``has_more``, its next pages (at most :data:`MAX_PAGES` in all, all
    within ``endpoint.timeout`` seconds)."""
    end = time.monotonic() + endpoint.timeout
    pages = [await send(session, endpoint, "GET", "/models")]
    models = _parsed(pages[0])
    while not models and len(pages) < MAX_PAGES and (path := _next_page(pages[-1])):
        left = end - time.monotonic()
        if left <= 0:
            break
        pages.append(await send(session, dataclasses.replace(endpoint, timeout=left), "GET", path))
        models = _parsed(pages[-1])
    return Listing(tuple(pages), tuple(models))


def _seen(exchange: Exchange, key: str | None, *, listing: bool = False) -> str:
    """``METHOD URL`` and what came back: ``answered STATUS: BODY`` (the body redacted, on one
    line, cut at 200 chars; for a ``listing`` that answered 200, ``lists no model id: BODY``),
    ``got no answer (why)`` or ``answered STATUS but (why)``."""
    where = f"{exchange.method} {shown(exchange.url, key, inline=True)}"
    error = shown(exchange.error or "", key, inline=True)
    if exchange.status is None:
        return f"{where} got no answer ({error})"
    if exchange.timed_out:
        return f"{where} answered {exchange.status} but {error}"
    body = shown(exchange.body, key, inline=True)[:200] or "(empty)"
    if listing and exchange.status == 200:
        return f"{where} lists no model id: {body}"
    return f"{where} answered {exchange.status}: {body}"


def listing_problem(listing: Listing, key: str | None) -> str | None:
    """None when ``listing`` lists a model, else what was seen (on one line, ``key``
    redacted): ``GET URL got no answer (...)``, ``... answered STATUS: BODY`` or ``... lists
    no model id: BODY``."""
    return None if listing.models else _seen(listing.last, key, listing=True)


async def first_listed_model(endpoint: Endpoint) -> str:
    """The id of the first model ``GET {base}/models`` lists (:func:`model_listing`;
    ``endpoint.model`` is not used, its key, timeouts and size limit are), as sent: the caller
    shows it. Raises ValueError saying what was seen (:func:`listing_problem`). Its redirects
    are noted (:func:`~conformance._redirects.note`) like any exchange's."""
    async with aiohttp.ClientSession(trust_env=False) as session:
        listing = await model_listing(session, endpoint)
    problem = listing_problem(listing, endpoint.api_key)
    if problem:
        raise ValueError(problem)
    return listing.models[0]


def _chat_body(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": CHAT_PROMPT}], "max_tokens": 1}


def _unreachable(exchange: Exchange, key: str | None) -> str | None:
    """Why the host could not be reached (refused, DNS, TLS), else None."""
    if exchange.status is not None or not exchange.error:
        return None
    if exchange.error.split(":", 1)[0] not in _CONNECT_ERRORS:
        return None
    return f"cannot reach the endpoint: {_seen(exchange, key)}"


def _auth_problem(exchange: Exchange, key: str | None) -> str | None:
    """The message for a 401 or 403: the key is missing, or it was refused; else None."""
    if exchange.status not in (401, 403):
        return None
    said = f"{exchange.method} {shown(exchange.url, key, inline=True)} answered {exchange.status}"
    return f"{NEEDS_KEY} ({said})" if not key else f"{REFUSED_KEY} ({said})"


def _error_text(exchange: Exchange) -> tuple[str, str]:
    """The (code, message) of an error answer: OpenAI's envelope, or vLLM's top-level error
    object; ("", "") when the body says neither."""
    try:
        data = exchange.json()
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    error = data["error"] if isinstance(data.get("error"), dict) else data
    code, message = error.get("code"), error.get("message") or error.get("detail")
    return (code if isinstance(code, str) else ""), (message if isinstance(message, str) else "")


def _about_model(exchange: Exchange, model: str) -> bool:
    """Whether a 404's error is about the model (code model_not_found, or its message names
    the model as a word of its own), not about the route."""
    code, message = _error_text(exchange)
    named = re.search(rf"(?<![\w./:-]){re.escape(model)}(?![\w./:-])", message) if model else None
    return code == "model_not_found" or named is not None


def _model_missing(model: str, listing: Listing, key: str | None) -> str:
    listed = ", ".join(shown(m, key, inline=True) for m in listing.models[:10])
    more = f" and {len(listing.models) - 10} more" if len(listing.models) > 10 else ""
    said = f"GET /models lists: {listed}{more}" if listed else listing_problem(listing, key)
    return f"model {shown(model, key, inline=True)} not found; {said}"


def _guesses(base_url: str) -> list[str]:
    """Base URLs the user may have meant, most likely first: without a trailing
    /chat/completions, with /v1 added, the origin's /v1, then the base's parent paths."""
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    found = [origin + path.removesuffix("/chat/completions"), f"{base_url}/v1", f"{origin}/v1"]
    while path:
        path = path.rsplit("/", 1)[0]
        found.append(origin + path)
    return list(dict.fromkeys(g for g in found if g.rstrip("/") != base_url.rstrip("/")))


async def _guessed_base(session: aiohttp.ClientSession, endpoint: Endpoint) -> str | None:
    """The first guess (:func:`_guesses`) whose ``GET /models`` lists a model, else None."""
    guesses = _guesses(endpoint.base_url)[:6]
    timeout = min(GUESS_TIMEOUT, endpoint.timeout)
    asked = [dataclasses.replace(endpoint, base_url=g, timeout=timeout) for g in guesses]
    answers = await asyncio.gather(*(send(session, e, "GET", "/models") for e in asked))
    return next((g for g, a in zip(guesses, answers, strict=True) if _parsed(a)), None)


async def _route_missing(session: aiohttp.ClientSession, endpoint: Endpoint, url: str) -> str:
    guess = await _guessed_base(session, endpoint)
    said = f"no chat completions at {url}; {ROUTE_HINT}"
    return said + (f"; did you mean {guess}?" if guess else "")


async def _listed_or_stop(
    session: aiohttp.ClientSession, endpoint: Endpoint, listing: Listing
) -> str:
    """The first model ``listing`` lists; raises CannotStart saying what was seen."""
    key, last = endpoint.api_key, listing.last
    problem = _unreachable(last, key) or _auth_problem(last, key)
    if problem:
        raise CannotStart(problem)
    if listing.models:
        return listing.models[0]
    said = f"no --model given, and {listing_problem(listing, key)}; pass --model ID"
    if last.status == 404:
        guess = await _guessed_base(session, endpoint)
        said += f" (did you mean {guess}?)" if guess else f" ({ROUTE_HINT})"
    raise CannotStart(said)


async def _judged(
    session: aiohttp.ClientSession, endpoint: Endpoint, chat: Exchange, listing: Listing
) -> str | None:
    """The warning for the chat answer (None for a 200 in time); raises CannotStart for the
    answers that stop the run."""
    key, model = endpoint.api_key, endpoint.model
    problem = _unreachable(chat, key) or _auth_problem(chat, key)
    if problem:
        raise CannotStart(problem)
    if chat.status == 404 and _about_model(chat, model):
        raise CannotStart(_model_missing(model, listing, key))
    if chat.status == 404:
        url = shown(chat.url, key, inline=True)
        raise CannotStart(await _route_missing(session, endpoint, url))
    if chat.status == 200 and not chat.timed_out:
        return None
    return f"preflight: {_seen(chat, key)}; the checks go on and judge it"


async def preflight(endpoint: Endpoint, *, within: float, model_given: bool = True) -> Preflight:
    """The preflight against ``endpoint`` (its key; each request within ``within`` seconds,
    the whole within about that): ``GET /models`` and the chat request ``{"model": M,
    "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1}`` at once, or, when
    not ``model_given``, the listing first and M its first model. Raises CannotStart with one
    line (the key redacted) when the run cannot start; see the module's docstring."""
    end = time.monotonic() + within
    bounded = dataclasses.replace(
        endpoint, timeout=within, read_timeout=min(endpoint.read_timeout, within)
    )
    async with aiohttp.ClientSession(trust_env=False) as session:
        if model_given:
            listing, chat = await asyncio.gather(
                model_listing(session, bounded),
                send(
                    session, bounded, "POST", "/chat/completions", body=_chat_body(endpoint.model)
                ),
            )
        else:
            listing = await model_listing(session, bounded)
            model = await _listed_or_stop(session, bounded, listing)
            bounded = dataclasses.replace(
                bounded, model=model, timeout=max(0.1, end - time.monotonic())
            )
            chat = await send(session, bounded, "POST", "/chat/completions", body=_chat_body(model))
        warning = await _judged(session, bounded, chat, listing)
    return Preflight(bounded.model, len(listing.pages) + 1, tokens_of(chat), warning)
