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


def test_what_was_held_when_the_listener_lost_the_database_is_kept_for_stale_answers() -> None:
    clock = Clock()
    cache = LookupCache(max_size=10, ttl_seconds=60, clock=clock)
    value = uuid.uuid4()
    cache.put("wall-painting", value)
    clock.now += 5
    cache.keep(as_of=clock.now - 1)  # the listener's last round trip: 1 s before the loss
    assert cache.get("wall-painting") is None  # never answers as fresh any more
    assert cache.get_kept("wall-painting", max_age=3600) == (value, 1.0)
    clock.now += 120  # past the TTL: the notifications kept it correct, not the TTL
    assert cache.get_kept("wall-painting", max_age=3600) == (value, 121.0)
    assert cache.get_kept("wall-painting", max_age=120) is None  # past the stale limit
    assert cache.get_kept("elsewhere", max_age=3600) is None


def test_a_failed_reconnection_keeps_the_first_moment_and_nothing_unverified() -> None:
    clock = Clock()
    cache = LookupCache(max_size=10, ttl_seconds=60, clock=clock)
    held = uuid.uuid4()
    cache.put("held", held)
    cache.keep(as_of=clock.now)
    cache.put("read-meanwhile", uuid.uuid4())  # never verified by the listener
    clock.now += 10
    cache.keep(as_of=clock.now)  # the reconnection failed: lost again
    assert cache.get_kept("held", max_age=3600) == (held, 10.0)  # the age did not restart
    assert cache.get_kept("read-meanwhile", max_age=3600) is None
    assert len(cache) == 0


def test_a_change_drops_a_kept_entry_and_a_reset_ends_them_all() -> None:
    cache = LookupCache(max_size=10, ttl_seconds=60, clock=Clock())
    cache.put("changed", uuid.uuid4())
    cache.put("steady", uuid.uuid4())
    cache.keep(as_of=1000.0)
    cache.drop("changed")
    assert cache.get_kept("changed", max_age=3600) is None
    assert cache.get_kept("steady", max_age=3600) is not None
    cache.clear()  # the reconnection's reset
    assert cache.get_kept("steady", max_age=3600) is None


def test_what_is_kept_is_bounded_by_the_cache_size() -> None:
    cache = LookupCache(max_size=3, ttl_seconds=60, clock=Clock())
    for n in range(10):
        cache.put(f"service-{n}", uuid.uuid4())
    cache.keep(as_of=1000.0)
    assert len(cache.kept) == 3
    kept = [n for n in range(10) if cache.get_kept(f"service-{n}", max_age=3600)]
    assert kept == [7, 8, 9]


def test_a_stale_limit_of_zero_keeps_nothing_answering() -> None:
    cache = LookupCache(max_size=3, ttl_seconds=60, clock=Clock())
    cache.put("held", uuid.uuid4())
    cache.keep(as_of=1000.0)
    assert cache.get_kept("held", max_age=0) is None
