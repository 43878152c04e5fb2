"""Stale-if-error for NOTIFY-guarded caches: what a cache held when its listener lost the
database, kept to answer while the database cannot.

A guarded cache is correct as long as its listener delivers every change. When the
listener's connection is lost, the entries it held are still correct as of the last
moment every change was known to be delivered (``Listener.delivered_until``: the last
ping's round trip), and nothing later can be known. ``Kept`` holds those entries apart
from the live cache, with that moment:

- they answer only when the database cannot (the caller decides: a connection error,
  the closed gate, an open breaker), and only up to ``max_age`` seconds after that
  moment; the age is what the answer says it is;
- a change delivered before the loss already dropped its entry, and the entry never
  comes back: nothing new is added while kept (a second loss keeps the first moment);
- the next successful LISTEN resets the guard, which clears them: once the database
  answers again, fresh answers only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Kept(Generic[K, V]):
    """Entries held when the listener lost the database, correct as of ``as_of``.

    Callers change it under their cache's lock; ``get`` needs none (one dict read).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.entries: dict[K, V] = {}
        self.as_of: float | None = None  # clock(): correct up to then; None: nothing kept

    def keep(self, entries: dict[K, V], as_of: float) -> bool:
        """Take ``entries`` (the cache's live entries, which it then drops), unless already
        keeping since an earlier loss: a reconnection that failed again changes nothing
        (what the live cache got meanwhile was never verified, and is dropped too)."""
        if self.as_of is not None:
            return False
        self.entries, self.as_of = entries, as_of
        return True

    def get(self, key: K, max_age: float) -> tuple[V, float] | None:
        """(value, age in seconds) if ``key`` is kept and was correct within ``max_age``."""
        as_of = self.as_of
        if as_of is None or max_age <= 0:
            return None
        age = max(0.0, self.clock() - as_of)
        if age > max_age:
            return None
        value = self.entries.get(key)
        return None if value is None else (value, age)

    def drop(self, key: K) -> None:
        self.entries.pop(key, None)

    def drop_where(self, doomed: Callable[[V], bool]) -> None:
        for key in [key for key, value in self.entries.items() if doomed(value)]:
            del self.entries[key]

    def clear(self) -> None:
        self.entries, self.as_of = {}, None

    def __len__(self) -> int:
        return len(self.entries)
