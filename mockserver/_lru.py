"""The one bounded least-recently-used mapping of the mock: the answer cache, the cassette keys
per raw body and the fail-first counts each keep their entries in an :class:`LRU`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["LRU"]

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A mapping of at most ``capacity`` entries and, when ``weigh`` is given, at most
    ``max_weight`` in total (``weigh(key, value)`` each, e.g. bytes); the least recently used
    entry is dropped first. ``None`` is not a value: :meth:`get` uses it for "not kept"."""

    def __init__(
        self,
        capacity: int = 4096,
        *,
        max_weight: int = 0,
        weigh: Callable[[K, V], int] | None = None,
    ) -> None:
        self.capacity = capacity
        self.max_weight = max_weight
        self.weight = 0  # the sum of weigh() over the entries kept (0 without weigh)
        self._weigh = weigh
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        """The value kept for ``key`` (now the most recently used), else None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> list[tuple[K, V]]:
        """Keep ``value`` for ``key``; the entries dropped to stay within the bounds, oldest
        first (the new one among them only when it alone is over ``max_weight``)."""
        weigh = self._weigh
        if weigh is not None:
            old = self._entries.get(key)
            self.weight += weigh(key, value) - (0 if old is None else weigh(key, old))
        self._entries[key] = value
        self._entries.move_to_end(key)
        dropped = []
        while len(self._entries) > self.capacity or (
            weigh is not None and self.weight > self.max_weight
        ):
            old_key, old_value = self._entries.popitem(last=False)
            if weigh is not None:
                self.weight -= weigh(old_key, old_value)
            dropped.append((old_key, old_value))
        return dropped

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self.weight = 0
