"""A change that lands between a lookup's "unchanged since I read?" check and its cache put
is never lost: the check and the put are one step as far as the invalidation is concerned.

The interleaving is forced, not waited for: the reader's version check (its read of the
guard's versions) starts the invalidation on a listener-like thread and lets it run as far
as it can before the reader goes on to put.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from lookups import resolver
from lookups.models import MicroService
from tests.lookups.conftest import settle

SLUG = "wall-painting"


def change_without_notifying(slug: str, new: uuid.UUID) -> None:
    """The row changes; its NOTIFY is the one the test delivers by hand, when it chooses."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # triggers off
        cursor.execute("UPDATE lookups_microservice SET uuid = %s WHERE slug = %s", [new, slug])


class VersionsRead(dict):
    """The guard's per-key versions; the reader's ``nth`` read of SLUG runs ``hook`` after
    taking its value (the version check has its answer; the put has not happened yet)."""

    def __init__(self, versions: dict[str, int], nth: int, hook: Callable[[], None]) -> None:
        super().__init__(versions)
        self.reader = threading.current_thread()
        self.nth, self.hook, self.reads = nth, hook, 0

    def get(self, key: str, default: Any = None) -> Any:
        value = super().get(key, default)
        if key == SLUG and threading.current_thread() is self.reader:
            self.reads += 1
            if self.reads == self.nth:
                self.hook()
        return value


def invalidate_meanwhile(service: resolver.Lookups, new: uuid.UUID) -> threading.Thread:
    """The hook: the row changes and its invalidation arrives, as the listener thread
    delivers it. Returns once the invalidation has counted the change and its drop has
    either finished or is waiting for the cache (which the reader may be holding)."""
    cache = service.cache
    dropping, dropped = threading.Event(), threading.Event()
    drop = service.guard.on_change

    def deliver() -> None:
        def on_change(key: str) -> None:
            dropping.set()
            drop(key)
            dropped.set()

        service.guard.on_change = on_change
        try:
            service.guard.invalidate(SLUG)
        finally:
            service.guard.on_change = drop

    change_without_notifying(SLUG, new)
    listener = threading.Thread(target=deliver, name="fake-listener")
    listener.start()
    assert dropping.wait(5), "the invalidation never reached the cache"
    deadline = time.monotonic() + 5
    while not (dropped.is_set() or cache._lock.locked()):
        assert time.monotonic() < deadline, "the drop neither finished nor waited"
        time.sleep(0.001)
    return listener


@pytest.mark.parametrize(
    ("entry", "nth"),
    [
        # lookup(): reads its stamp before the query (1st) and checks it after (2nd)
        (lambda service: service.lookup(SLUG), 2),
        (lambda service: service.lookup_many([SLUG]), 2),
        # warm(): copies the versions before the query; its check is the first read
        (lambda service: service.warm([SLUG]), 1),
    ],
    ids=["lookup", "lookup_many", "warm"],
)
def test_an_invalidation_between_the_check_and_the_put_is_not_lost(
    lookups: resolver.Lookups, entry: Callable[[resolver.Lookups], Any], nth: int
) -> None:
    old, new = uuid.uuid4(), uuid.uuid4()
    MicroService.objects.create(slug=SLUG, uuid=old)
    settle(lookups)  # the create's own NOTIFY has arrived: nothing else is in flight
    listeners: list[threading.Thread] = []
    lookups.guard.versions = VersionsRead(
        lookups.guard.versions, nth, lambda: listeners.append(invalidate_meanwhile(lookups, new))
    )

    entry(lookups)  # read the old uuid; the change lands between its check and its put

    assert listeners, "the version check never ran"
    listeners[0].join(5)
    assert not listeners[0].is_alive()
    assert lookups.guard.versions[SLUG] >= 1
    assert lookups.cache.get(SLUG) is None  # what was read before the change is not kept
    again = lookups.lookup(SLUG)
    assert (again.uuid, again.source) == (new, "db")
