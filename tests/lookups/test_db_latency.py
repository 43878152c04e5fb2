"""The database lookup latency (db_avg_ms, db_p95_ms, the "DB lookup above 100 ms" alert)
counts the answers the database gave, single lookups and batches alike: a query that failed
is counted as an error and answered degraded, never as a latency."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.db import connection

from controlplane.lib import sidedb
from lookups import resolver
from lookups.exceptions import MicroServiceNotFoundError
from lookups.models import MicroService
from tests.lookups.conftest import settle


@pytest.fixture
def one_attempt(settings: Any) -> None:
    """No retries (before ``lookups`` builds the service): each lookup makes one query."""
    settings.LOOKUP_DB_RETRIES = 0
    settings.LOOKUP_STATS_FLUSH_SECONDS = 3600


def db_latencies(lookups: resolver.Lookups) -> int:
    return sum(lookups.metrics.raw()["db_latency"]["counts"])


@contextmanager
def registry_locked() -> Iterator[None]:
    """Another session holds the registry table: this process's lookup queries wait and are
    cancelled by PostgreSQL's statement timeout (a real OperationalError)."""
    info = sidedb.default_conninfo(
        application_name="test-locker", connect_timeout=5, statement_timeout_ms=10_000
    )
    other = psycopg.connect(**info)
    try:
        other.execute("LOCK TABLE lookups_microservice IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = '200ms'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")
    finally:
        other.rollback()
        other.close()


def test_a_failed_query_is_not_a_latency_single_or_batch(
    one_attempt: None, lookups: resolver.Lookups
) -> None:
    with registry_locked():
        single = lookups.lookup("wall-painting")
        batch = lookups.lookup_many(["roof-repair", "floor-sanding"])
    assert single.fallback_used and all(item.fallback_used for item in batch)
    assert lookups.metrics.raw()["counters"]["errors"] == 2  # one query each, both failed
    assert db_latencies(lookups) == 0


def test_each_answer_from_the_database_is_one_latency_single_or_batch(
    one_attempt: None, lookups: resolver.Lookups
) -> None:
    MicroService.objects.create(slug="wall-painting")
    MicroService.objects.create(slug="roof-repair")
    settle(lookups)
    assert lookups.lookup("wall-painting").source == "db"
    found, missing = lookups.lookup_many(["roof-repair", "floor-sanding"])
    assert found.source == "db" and isinstance(missing, MicroServiceNotFoundError)
    assert db_latencies(lookups) == 2  # one per query that answered
