"""With PostgreSQL unreachable, a breaker decides from what its process knows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.registry import registry
from controlplane.lib import sidedb
from tests.breakers.conftest import fail


@contextmanager
def database_down(name: str) -> Iterator[None]:
    """The breakers' side connection points at a server that does not exist, and the
    breaker's snapshot is dropped, so its next call needs the database."""
    side = registry.side
    registry.side = sidedb.SideConnection(lambda: {"host": "/nonexistent", "dbname": "x"})
    registry.invalidate(name)
    try:
        yield
    finally:
        registry.side = side
        registry.database_ok()


def test_fail_open_permits_then_trips_on_local_counts(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=2, fail_open=True)
    b.call(lambda: None)  # known: closed, fail_open
    with database_down(b.name):
        assert b.call(lambda: "local") == "local"
        assert registry.degraded
        fail(b, 2)
        with pytest.raises(CircuitOpenError):
            b.call(lambda: None)


def test_fail_closed_refuses(make_breaker: Any) -> None:
    b = make_breaker(fail_open=False)
    b.call(lambda: None)
    with database_down(b.name), pytest.raises(CircuitOpenError):
        b.call(lambda: None)


def test_a_permit_granted_without_the_database_is_local(make_breaker: Any) -> None:
    b = make_breaker(fail_open=True)
    b.call(lambda: None)
    known = b.runtime.snapshot.generation
    with database_down(b.name):
        permit = b.runtime.acquire()
    assert permit.local and permit.generation == known
    assert b.runtime.acquire().local is False  # the database is back: a shared permit again
