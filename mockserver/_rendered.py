"""Rendered answers: the bytes of a template answer, made once per distinct request body and
stamped with a fresh id and time for each request.

A template answer depends only on the request body and the server's configuration, so the
bytes rendered for a body (validated, shaped by the dialect, passed through the defects,
encoded) are kept in a bounded LRU keyed by the raw body bytes; they carry a sentinel id and
``created`` that :meth:`AnswerCache.stamp` replaces. Validation is not loosened: a body gets
an entry only after it was validated once, and the same bytes validate the same way.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["AnswerCache", "Rendered"]


@dataclass(frozen=True)
class Rendered:
    """One answer's bytes: its SSE events, or the one JSON body of a non-stream answer."""

    model: str
    stream: bool
    events: tuple[bytes, ...]
    content_type: str
    completion_tokens: int
    body: bytes = field(init=False)  # the events joined: what one write sends

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", b"".join(self.events))


class AnswerCache:
    """Rendered answers by raw request body, at most ``capacity`` entries and ``max_bytes``
    of keys and bodies (least recently used dropped first)."""

    def __init__(self, capacity: int = 1024, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.completion_id = f"chatcmpl-{secrets.token_hex(16)}"  # the sentinels stamp replaces
        self.created = 9 * 10**12 + secrets.randbelow(10**12)
        self._sentinels = (self.completion_id.encode(), str(self.created).encode())
        self._entries: OrderedDict[bytes, Rendered] = OrderedDict()
        self._templates: dict[int, bytes] = {}  # id(body) of a kept entry -> a %-template
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, raw: bytes) -> Rendered | None:
        """The answer rendered for body ``raw``, if it is kept."""
        rendered = self._entries.get(raw)
        if rendered is not None:
            self._entries.move_to_end(raw)
        return rendered

    def put(self, raw: bytes, rendered: Rendered) -> None:
        """Keep ``rendered`` (made with the sentinels) as the answer to body ``raw``."""
        size = len(raw) + len(rendered.body)
        if size > self.max_bytes // 16 or raw in self._entries:
            return
        self._entries[raw] = rendered
        sentinel_id, sentinel_created = self._sentinels
        self._templates[id(rendered.body)] = (
            rendered.body.replace(b"%", b"%%")
            .replace(sentinel_id, b"%(id)s")
            .replace(sentinel_created, b"%(created)d")
        )
        self._bytes += size
        while len(self._entries) > self.capacity or self._bytes > self.max_bytes:
            old_raw, old = self._entries.popitem(last=False)
            del self._templates[id(old.body)]
            self._bytes -= len(old_raw) + len(old.body)

    def stamp(self, data: bytes, completion_id: str, created: int) -> bytes:
        """``data`` with the sentinel id and ``created`` replaced by this request's (a kept
        body was made a %-template once: one C-level formatting)."""
        template = self._templates.get(id(data))
        if template is not None:
            return template % {b"id": completion_id.encode(), b"created": created}
        sentinel_id, sentinel_created = self._sentinels
        return data.replace(sentinel_id, completion_id.encode()).replace(
            sentinel_created, b"%d" % created
        )
