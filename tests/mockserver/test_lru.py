"""The one LRU mapping: bounded by entries and, when it weighs them, by weight."""

from __future__ import annotations

from mockserver._lru import LRU


def test_the_least_recently_used_entry_goes_first():
    lru = LRU(2)
    assert lru.put("a", 1) == []
    lru.put("b", 2)
    assert lru.get("a") == 1  # now "b" is the least recently used
    assert lru.put("c", 3) == [("b", 2)]
    assert (len(lru), "a" in lru, "b" in lru, lru.get("b")) == (2, True, False, None)


def test_putting_a_kept_key_refreshes_it_and_its_weight():
    lru = LRU(10, max_weight=10, weigh=lambda key, value: len(value))
    lru.put("a", "xxxx")
    lru.put("b", "yyyy")
    lru.put("a", "zz")
    assert lru.weight == 6
    assert lru.put("c", "wwwww") == [("b", "yyyy")]  # 11 > 10: the oldest, "b", goes
    assert lru.weight == 7


def test_an_entry_over_the_weight_alone_is_dropped_with_the_rest():
    lru = LRU(10, max_weight=4, weigh=lambda key, value: value)
    lru.put("a", 1)
    assert lru.put("big", 5) == [("a", 1), ("big", 5)]
    assert (len(lru), lru.weight) == (0, 0)


def test_clear_forgets_everything():
    lru = LRU(3, max_weight=9, weigh=lambda key, value: value)
    lru.put("a", 3)
    lru.clear()
    assert (len(lru), lru.weight, lru.get("a")) == (0, 0, None)
