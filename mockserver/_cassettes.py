"""Cassettes: recorded exchanges, one pretty-printed JSON file each, matched to requests and
replayed byte for byte (same status, headers, bytes and write boundaries).

The file format (``version`` 1) is documented in README.md, "Modes, cassettes, record and
replay". A request matches a cassette by method, path and the canonical JSON of its body
without :data:`VOLATILE_KEYS`; a cassette saying ``"match": "loose"`` (or every cassette, with
``MockConfig.match="loose"``) matches by method, path, ``model``, ``messages`` and whether
``stream`` is on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from mockserver._body import parse_json
from mockserver._errors import ApiError
from mockserver._lru import LRU

__all__ = [
    "CASSETTE_VERSION",
    "LOOSE_KEYS",
    "VOLATILE_KEYS",
    "Cassette",
    "CassetteError",
    "CassetteStore",
    "ScriptedCassettes",
    "Write",
    "builtin_cassettes",
    "dump_cassette",
    "load_cassette",
    "load_directory",
    "parse_request_body",
    "replay",
    "request_key",
    "save_cassette",
]

CASSETTE_VERSION = 1
# Top-level request keys that name the caller or steer storage, not the answer: not matched.
VOLATILE_KEYS = frozenset({"user", "metadata", "store", "safety_identifier", "prompt_cache_key"})
LOOSE_KEYS = ("model", "messages", "stream")
# Hop-by-hop headers (RFC 9110 7.6.1) and those the replaying server computes itself.
UNSTORED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "date",
        "host",
        "accept-encoding",
    }
)
# Stored as [REDACTED] by `chatcompat record`: the credentials OpenAI, Azure OpenAI (api-key,
# Ocp-Apim-Subscription-Key of API Management), Anthropic, Google and AWS clients send, cookies,
# and the OpenAI organization / project ids (not credentials, but they name the account).
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
        "x-functions-key",
        "x-amz-security-token",
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
    }
)
REDACTED = "[REDACTED]"


class CassetteError(ValueError):
    """A cassette file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Write:
    """One write of the answer body and the seconds waited before it."""

    delay: float  # since the previous write; the first: since the response headers
    data: bytes


@dataclass(frozen=True)
class Cassette:
    """One recorded exchange: the request that was sent and the answer as it was written."""

    method: str
    path: str
    body: Any  # the JSON request body; a str when it was not JSON; None when empty
    status: int
    headers: Mapping[str, str]  # answer headers, hop-by-hop and secrets left out
    writes: tuple[Write, ...]
    stream: bool  # True: stored write by write; False: one body
    request_headers: Mapping[str, str] = field(default_factory=dict)
    wait: float = 0.0  # seconds from the request to the answer's headers
    match: str = "exact"  # exact | loose
    source: str = ""  # where it was loaded from

    @cached_property
    def content(self) -> bytes:
        """The whole answer body."""
        return b"".join(w.data for w in self.writes)

    @cached_property
    def answer_headers(self) -> CIMultiDictProxy[str]:
        """The headers a replay sends: the stored ones but those the server computes itself."""
        kept = ((k, v) for k, v in self.headers.items() if k.lower() not in UNSTORED_HEADERS)
        return CIMultiDictProxy(CIMultiDict(kept))


def _bytes_field(data: bytes, text_key: str, base64_key: str) -> dict[str, str]:
    """``data`` as UTF-8 text when it is valid UTF-8, else as base64."""
    try:
        return {text_key: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {base64_key: base64.b64encode(data).decode("ascii")}


def _read_bytes(obj: Mapping[str, Any], text_key: str, base64_key: str) -> bytes:
    if text_key in obj:
        return str(obj[text_key]).encode("utf-8")
    if base64_key in obj:
        return base64.b64decode(str(obj[base64_key]), validate=True)
    return b""


def dump_cassette(cassette: Cassette) -> str:
    """The cassette as pretty-printed JSON text (keys in a fixed order, newline at the end)."""
    request: dict[str, Any] = {
        "method": cassette.method,
        "path": cassette.path,
        "headers": dict(cassette.request_headers),
    }
    if isinstance(cassette.body, str):
        request["body_text"] = cassette.body
    elif cassette.body is not None:
        request["body"] = cassette.body
    response: dict[str, Any] = {
        "status": cassette.status,
        "headers": dict(cassette.headers),
        "wait": round(cassette.wait, 6),
    }
    if cassette.stream:
        response["writes"] = [
            {"delay": round(w.delay, 6), **_bytes_field(w.data, "text", "base64")}
            for w in cassette.writes
        ]
    else:
        response["delay"] = round(sum(w.delay for w in cassette.writes), 6)
        response.update(_bytes_field(cassette.content, "body", "body_base64"))
    document = {
        "version": CASSETTE_VERSION,
        "match": cassette.match,
        "request": request,
        "response": response,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _parse(document: Any, source: str) -> Cassette:
    if not isinstance(document, dict) or document.get("version") != CASSETTE_VERSION:
        raise CassetteError(f"{source}: not a version {CASSETTE_VERSION} cassette")
    request, response = document.get("request"), document.get("response")
    if not isinstance(request, dict) or not isinstance(response, dict):
        raise CassetteError(f"{source}: 'request' and 'response' must be objects")
    match = document.get("match", "exact")
    if match not in ("exact", "loose"):
        raise CassetteError(f"{source}: 'match' must be 'exact' or 'loose', got {match!r}")
    body: Any = request.get("body")
    if "body_text" in request:
        body = str(request["body_text"])
    elif "body_base64" in request:
        body = _read_bytes(request, "", "body_base64").decode("utf-8", errors="replace")
    stream = "writes" in response
    if stream:
        writes = tuple(
            Write(float(w.get("delay", 0.0)), _read_bytes(w, "text", "base64"))
            for w in response["writes"]
        )
    else:
        data = _read_bytes(response, "body", "body_base64")
        writes = (Write(float(response.get("delay", 0.0)), data),)
    return Cassette(
        method=str(request["method"]).upper(),
        path=str(request["path"]),
        body=body,
        status=int(response["status"]),
        headers={str(k): str(v) for k, v in (response.get("headers") or {}).items()},
        writes=writes,
        stream=stream,
        request_headers={str(k): str(v) for k, v in (request.get("headers") or {}).items()},
        wait=float(response.get("wait", 0.0)),
        match=match,
        source=source,
    )


def load_cassette(text: str, source: str = "<cassette>") -> Cassette:
    """The cassette in JSON ``text``; :class:`CassetteError` naming ``source`` if it is not one."""
    try:
        return _parse(json.loads(text), source)
    except CassetteError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise CassetteError(f"{source}: {type(exc).__name__}: {exc}") from None


def load_directory(directory: str | Path) -> list[Cassette]:
    """Every ``*.json`` cassette under ``directory``, in file name order."""
    root = Path(directory)
    if not root.is_dir():
        raise CassetteError(f"{root}: not a directory of cassettes")
    return [
        load_cassette(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(root.rglob("*.json"))
    ]


def builtin_cassettes() -> list[Cassette]:
    """The cassettes shipped in ``mockserver/data/cassettes`` (the seed provider's examples)."""
    folder = resources.files("mockserver") / "data" / "cassettes"
    return [
        load_cassette(item.read_text(encoding="utf-8"), f"mockserver/data/cassettes/{item.name}")
        for item in sorted(folder.iterdir(), key=lambda i: i.name)
        if item.name.endswith(".json")
    ]


def save_cassette(cassette: Cassette, directory: str | Path, name: str) -> Path:
    """Write ``cassette`` as ``directory/name`` (created if needed, never overwritten)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    with path.open("x", encoding="utf-8") as out:
        out.write(dump_cassette(cassette))
    return path


def parse_request_body(raw: bytes) -> Any:
    """A request body as cassettes store it: the JSON value, else (not JSON, or past the bounds
    of ``_body.parse_json``) the text, None when empty."""
    if not raw:
        return None
    try:
        return parse_json(raw)
    except ApiError:
        return raw.decode("utf-8", errors="replace")


def request_key(method: str, path: str, body: Any, *, loose: bool = False) -> str:
    """The matching key: method, path and the canonical JSON of the body without the volatile
    keys (``loose``: only model, messages and whether stream is on)."""
    if isinstance(body, dict):
        if loose:
            body = {
                "model": body.get("model"),
                "messages": body.get("messages"),
                "stream": bool(body.get("stream")),
            }
        else:
            body = {k: v for k, v in body.items() if k not in VOLATILE_KEYS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{method.upper()} {path} {canonical}"


MemoKey = tuple[str, str, bytes]  # method, path, raw body
MemoEntry = tuple[str | None, str | None, Any]  # exact key, loose key, parsed body
MEMO_BYTES = 32 * 1024 * 1024  # what one store's memo of matching keys may hold


def _memo_bytes(key: MemoKey, entry: MemoEntry) -> int:
    """About the bytes one memo entry holds: the raw body, its two keys (each about as long)
    and the parsed body (counted as the raw body again; Python objects take more, which the
    bound's slack covers)."""
    raw, (exact, loose, _) = key[2], entry
    return 2 * len(raw) + len(exact or "") + len(loose or "")


class CassetteStore:
    """Cassettes indexed by their matching keys; each key replays its cassettes in recorded
    order, and the last one again once all have been used."""

    def __init__(self, cassettes: Iterable[Cassette], *, loose: bool = False) -> None:
        self.exact: dict[str, list[Cassette]] = {}
        self.loose: dict[str, list[Cassette]] = {}
        self._used: dict[str, int] = {}
        # (method, path, raw body) -> (its exact key, its loose key, the parsed body), bounded
        # by the bytes they hold (MEMO_BYTES), not only by their number
        self._seen: LRU[MemoKey, MemoEntry] = LRU(max_weight=MEMO_BYTES, weigh=_memo_bytes)
        for c in cassettes:
            if c.match == "exact":
                self.exact.setdefault(request_key(c.method, c.path, c.body), []).append(c)
            if c.match == "loose" or loose:
                key = request_key(c.method, c.path, c.body, loose=True)
                self.loose.setdefault(key, []).append(c)

    @classmethod
    def from_directories(
        cls, directories: Sequence[str], *, builtin: bool = True, loose: bool = False
    ) -> CassetteStore:
        """The cassettes of ``directories`` (in order), then the built-in ones."""
        cassettes = [c for d in directories for c in load_directory(d)]
        return cls([*cassettes, *(builtin_cassettes() if builtin else [])], loose=loose)

    def __len__(self) -> int:
        return sum(map(len, self.exact.values())) + sum(map(len, self.loose.values()))

    def find(self, method: str, path: str, body: Any) -> Cassette | None:
        """The cassette to replay for this request, exact matches first; None on a miss."""
        return self._take(*self._keys(method, path, body))

    def match(self, method: str, path: str, raw: bytes) -> tuple[Cassette, Any] | None:
        """:meth:`find` for a raw request body, and the parsed body; a body seen before is
        not parsed again (its keys are remembered, :data:`MEMO_BYTES` of them at most)."""
        if not self.exact and not self.loose:
            return None  # no cassette to match: nothing to parse or remember
        memo_key = (method, path, raw)
        keys = self._seen.get(memo_key)
        if keys is None:
            body = parse_request_body(raw)
            keys = (*self._keys(method, path, body), body)
            self._seen.put(memo_key, keys)
        found = self._take(keys[0], keys[1])
        return None if found is None else (found, keys[2])

    def _keys(self, method: str, path: str, body: Any) -> tuple[str | None, str | None]:
        """The request's exact and loose keys (None where no cassette has keys of that kind)."""
        exact = request_key(method, path, body) if self.exact else None
        loose = request_key(method, path, body, loose=True) if self.loose else None
        return exact, loose

    def _take(self, exact: str | None, loose: str | None) -> Cassette | None:
        """The next cassette under the exact key, else under the loose key (counting its use)."""
        for index, key, mark in ((self.exact, exact, "="), (self.loose, loose, "~")):
            found = index.get(key) if key is not None else None
            if found:
                counted = mark + str(key)
                used = self._used.get(counted, 0)
                self._used[counted] = used + 1
                return found[min(used, len(found) - 1)]
        return None

    def rewind(self) -> None:
        """Replay every key from its first cassette again."""
        self._used = {}


class ScriptedCassettes:
    """Cassettes loaded while the server runs (the pytest plugin's ``chat_mock.load_cassettes``),
    looked up before the configured ones; replaced whole, so another thread may load them."""

    def __init__(self) -> None:
        self.stores: tuple[CassetteStore, ...] = ()

    def add(self, cassettes: Iterable[Cassette], *, loose: bool = False) -> None:
        """Replay ``cassettes`` from now on (``loose``: match them by model, messages, stream)."""
        self.stores = (*self.stores, CassetteStore(cassettes, loose=loose))

    def match(self, method: str, path: str, raw: bytes) -> tuple[Cassette, Any] | None:
        """The loaded cassette for this request (its raw body) and the parsed body, or None."""
        for store in self.stores:
            found = store.match(method, path, raw)
            if found is not None:
                return found
        return None

    def clear(self) -> None:
        """Forget every loaded cassette."""
        self.stores = ()


async def replay(
    request: web.Request, cassette: Cassette, *, speed: float = 0.0
) -> web.StreamResponse:
    """Answer ``request`` with ``cassette``: at ``speed`` 0 at once (a stream's body in one
    write), else one write per recorded write after its delay divided by ``speed``."""
    answer_headers = cassette.answer_headers  # each response copies them
    if speed <= 0:
        return web.Response(status=cassette.status, body=cassette.content, headers=answer_headers)
    if cassette.wait > 0:
        await asyncio.sleep(cassette.wait / speed)
    if not cassette.stream:
        await asyncio.sleep(sum(w.delay for w in cassette.writes) / speed)
        return web.Response(status=cassette.status, body=cassette.content, headers=answer_headers)
    response = web.StreamResponse(status=cassette.status, headers=answer_headers)
    await response.prepare(request)
    for w in cassette.writes:
        if w.delay > 0:
            await asyncio.sleep(w.delay / speed)
        if w.data:
            await response.write(w.data)
    await response.write_eof()
    return response
