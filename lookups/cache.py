"""The in-process slug -> result cache: TTL plus LRU eviction, clock injectable for tests.

While the change listener is away, what the cache held is kept apart for stale answers
(``keep``, ``get_kept``; ``controlplane.lib.stale``): never more than ``max_size`` entries,
since they are the live entries of that moment.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from controlplane.lib.stale import Kept


class LookupCache:
    def __init__(
        self,
        *,
        max_size: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.ttl = ttl_seconds
        self.clock = clock
        self._entries: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0
        self.expirations = 0
        self.kept: Kept[str, Any] = Kept(clock)

    def get(self, slug: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(slug)
            if entry is None:
                return None
            value, expires_at = entry
            if self.clock() >= expires_at:
                del self._entries[slug]
                self.expirations += 1
                return None
            self._entries.move_to_end(slug)
            return value

    def put(self, slug: str, value: Any) -> None:
        with self._lock:
            self._store(slug, value)

    def put_if(self, slug: str, value: Any, unchanged: Callable[[], bool]) -> bool:
        """Store ``value`` only if ``unchanged()`` holds, checked under the lock that ``drop``
        and ``clear`` take. A CacheGuard counts a change before it drops the key, so an
        invalidation is either seen by the check or drops the entry after the put, never
        lost in between (which left a stale value for the whole TTL)."""
        with self._lock:
            if not unchanged():
                return False
            self._store(slug, value)
            return True

    def put_many_if(
        self, items: Iterable[tuple[str, Any]], unchanged: Callable[[str], bool]
    ) -> int:
        """``put_if`` for each item (one lock hold each, so readers are not held up)."""
        return sum(self.put_if(slug, value, lambda s=slug: unchanged(s)) for slug, value in items)

    def _store(self, slug: str, value: Any) -> None:
        self._entries[slug] = (value, self.clock() + self.ttl)
        self._entries.move_to_end(slug)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
            self.evictions += 1

    def drop(self, slug: str) -> None:
        with self._lock:
            self._entries.pop(slug, None)
            self.kept.drop(slug)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.kept.clear()

    def keep(self, as_of: float) -> None:
        """The change listener lost the database: what the cache holds stops answering as
        fresh and is kept for stale answers, correct as of ``as_of`` (whatever its TTL:
        the notifications, not the TTL, are what kept it correct)."""
        with self._lock:
            held = {slug: value for slug, (value, _) in self._entries.items()}
            self.kept.keep(held, as_of)
            self._entries.clear()

    def get_kept(self, slug: str, max_age: float) -> tuple[Any, float] | None:
        """(value, seconds since it was last known correct), while the listener is away."""
        return self.kept.get(slug, max_age)

    def cleanup_expired(self) -> int:
        """Remove expired entries (they are also dropped lazily on access)."""
        now = self.clock()
        with self._lock:
            expired = [slug for slug, (_, at) in self._entries.items() if now >= at]
            for slug in expired:
                del self._entries[slug]
            self.expirations += len(expired)
        return len(expired)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, slug: str) -> bool:
        return self.get(slug) is not None
