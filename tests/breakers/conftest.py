from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from controlplane.breakers.circuit import CircuitBreaker, breaker
from controlplane.breakers.registry import registry

_names = itertools.count()


@pytest.fixture
def fresh_name(transactional_db: Any) -> Iterator[str]:
    """A breaker name no other test used. Breakers live on the side connection (committed),
    so tests run transactional and start from empty breaker tables."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM breakers_breakerevent; DELETE FROM breakers_breaker")
    registry.runtimes.clear()
    registry.database_ok()
    yield f"test-{os.getpid()}-{next(_names)}"
    registry.runtimes.clear()


@pytest.fixture
def make_breaker(fresh_name: str) -> Any:
    def make(**config: Any) -> CircuitBreaker:
        config.setdefault("cooldown_seconds", 60)
        return breaker(fresh_name, **config)

    return make


def execute(sql: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def fail(b: CircuitBreaker, times: int = 1) -> list[BaseException]:
    raised = []
    for _ in range(times):
        try:
            b.call(_boom)
        except Exception as exc:
            raised.append(exc)
    return raised


def _boom() -> None:
    raise RuntimeError("upstream broke")


def elapse_cooldown(name: str) -> None:
    """Inject time: the cooldown ended (database clock), as every process will see."""
    execute(
        "UPDATE breakers_breaker SET open_until = now() - interval '1 ms' WHERE name = %s", [name]
    )
    registry.invalidate(name)
