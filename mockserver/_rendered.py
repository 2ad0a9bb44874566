"""Rendered answers: the bytes of a template answer, made once per distinct request body and
stamped with a fresh id and time for each request.

A template answer depends only on the request body and the server's configuration, so the
bytes rendered for a body (validated, shaped by the flavour, passed through the defects,
encoded) are kept in a bounded :class:`~mockserver._lru.LRU` keyed by the raw body bytes; they
carry a sentinel id and ``created`` that :meth:`AnswerCache.stamp` replaces. Validation is not
loosened: a body gets an entry only after it was validated once, and the same bytes validate the
same way.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from mockserver._lru import LRU

__all__ = ["AnswerCache", "Rendered"]

Stamper = Callable[[bytes, bytes], bytes]  # (id, created) -> the body with them in place


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


def _size(raw: bytes, rendered: Rendered) -> int:
    """The bytes an entry of the answer cache holds: its key and its body."""
    return len(raw) + len(rendered.body)


class AnswerCache(LRU[bytes, Rendered]):
    """Rendered answers by raw request body: an LRU of at most ``capacity`` entries and
    ``max_bytes`` of keys and bodies, whose answers carry the sentinel id and ``created`` that
    :meth:`stamp` replaces."""

    def __init__(self, capacity: int = 1024, max_bytes: int = 64 * 1024 * 1024) -> None:
        super().__init__(capacity, max_weight=max_bytes, weigh=_size)
        self.max_bytes = max_bytes
        self.completion_id = f"chatcmpl-{secrets.token_hex(16)}"  # the sentinels stamp replaces
        self.created = 9 * 10**12 + secrets.randbelow(10**12)
        self._sentinels = (self.completion_id.encode(), str(self.created).encode())
        self._split = re.compile(b"(" + b"|".join(map(re.escape, self._sentinels)) + b")").split
        self._stampers: dict[int, Stamper] = {}  # id(body) of a kept entry -> its stamper

    def put(self, raw: bytes, rendered: Rendered) -> list[tuple[bytes, Rendered]]:
        """Keep ``rendered`` (made with the sentinels) as the answer to body ``raw``, unless
        it takes more than a 16th of ``max_bytes`` or ``raw`` has one; the entries dropped."""
        if _size(raw, rendered) > self.max_bytes // 16 or raw in self:
            return []
        self._stampers[id(rendered.body)] = self._stamper(rendered.body)
        dropped = super().put(raw, rendered)
        for _, old in dropped:
            del self._stampers[id(old.body)]
        return dropped

    def _stamper(self, body: bytes) -> Stamper:
        """How to stamp ``body`` fast: when every id is followed by its created with the same
        bytes between (``"id":ID,"object":...,"created":CR`` in every chunk), one join with
        ``ID + between + CR`` as the separator; else one %-formatting."""
        pieces = self._split(body)  # text, sentinel, text, sentinel, ..., text
        sentinels, texts = pieces[1::2], pieces[0::2]
        alternating = sentinels == [*self._sentinels] * (len(sentinels) // 2)
        if alternating and len(set(texts[1::2])) == 1:
            between, outer = texts[1], texts[0::2]
            return lambda new_id, new_created: (new_id + between + new_created).join(outer)
        sentinel_id, sentinel_created = self._sentinels
        template = (
            body.replace(b"%", b"%%")
            .replace(sentinel_id, b"%(id)s")
            .replace(sentinel_created, b"%(created)s")
        )
        return lambda new_id, new_created: template % {b"id": new_id, b"created": new_created}

    def stamp(self, data: bytes, completion_id: str, created: int) -> bytes:
        """``data`` with the sentinel id and ``created`` replaced by this request's (a kept
        body was prepared once, see ``_stamper``)."""
        new_id, new_created = completion_id.encode(), b"%d" % created
        stamper = self._stampers.get(id(data))
        if stamper is not None:
            return stamper(new_id, new_created)
        sentinel_id, sentinel_created = self._sentinels
        return data.replace(sentinel_id, new_id).replace(sentinel_created, new_created)
