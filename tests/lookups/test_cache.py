from __future__ import annotations

import uuid

import pytest

from lookups.cache import LookupCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = LookupCache(max_size=10, ttl_seconds=1800, clock=clock)
    value = uuid.uuid4()
    cache.put("wall-painting", value)
    clock.now += 1799
    assert cache.get("wall-painting") == value
    clock.now += 1
    assert cache.get("wall-painting") is None
    assert cache.expirations == 1


def test_least_recently_used_entries_are_evicted() -> None:
    cache = LookupCache(max_size=2, ttl_seconds=60, clock=Clock())
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") == a  # a is now the most recently used
    cache.put("c", c)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (a, c)
    assert cache.evictions == 1


def test_cleanup_removes_expired_entries_in_one_pass() -> None:
    clock = Clock()
    cache = LookupCache(max_size=10, ttl_seconds=10, clock=clock)
    cache.put("old", uuid.uuid4())
    clock.now += 5
    cache.put("new", uuid.uuid4())
    clock.now += 6
    assert cache.cleanup_expired() == 1
    assert len(cache) == 1 and "new" in cache


def test_a_cache_needs_room() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LookupCache(max_size=0, ttl_seconds=1)
