"""Each branch of the lookup flow against the real database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from controlplane.breakers.actions import override_breaker
from lookups import exceptions, resolver
from lookups.models import MicroService
from tests.conftest import run_with_dead_database
from tests.lookups.conftest import fallback, settle


def test_miss_then_hit(lookups: resolver.Lookups) -> None:
    service = MicroService.objects.create(slug="wall-painting", name="Wall painting")
    settle(lookups)
    first = lookups.lookup("wall-painting")
    assert (first.uuid, first.source, first.fallback_used) == (service.uuid, "db", False)
    with CaptureQueriesContext(connection) as queries:
        second = lookups.lookup("wall-painting")
    assert (second.uuid, second.source) == (service.uuid, "cache")
    assert len(queries) == 0
    counters = lookups.metrics.raw()["counters"]
    assert (counters["hits"], counters["misses"], counters["found"]) == (1, 1, 1)


def test_not_found_is_recoverable(lookups: resolver.Lookups) -> None:
    MicroService.objects.create(slug="retired", active=False)
    with pytest.raises(exceptions.MicroServiceNotFoundError) as missing:
        lookups.lookup("retired")
    assert (missing.value.http_status, missing.value.recovery) == (404, "fallback")
    assert missing.value.metadata["recovery"] == "fallback"


@pytest.mark.parametrize(
    "slug", ["Wall-Painting", "wall--painting", "-wall", "wall_painting", "", "a" * 101, None]
)
def test_invalid_slugs_are_refused_before_any_query(lookups: resolver.Lookups, slug: Any) -> None:
    with (
        CaptureQueriesContext(connection) as queries,
        pytest.raises(exceptions.InvalidSlugError) as bad,
    ):
        lookups.lookup(slug)
    assert (bad.value.http_status, bad.value.code, bad.value.recovery) == (
        400,
        "INVALID_SLUG",
        "abort",
    )
    assert len(queries) == 0


def test_an_open_breaker_falls_back_without_a_database_call(
    lookups: resolver.Lookups, ops_user: Any
) -> None:
    MicroService.objects.create(slug="wall-painting")
    lookups.breaker.allows()  # create the breaker row
    override_breaker(
        name=resolver.BREAKER, action="force_open", reason="db maintenance", actor=ops_user
    )
    lookups.breaker.runtime.registry.invalidate(resolver.BREAKER)
    lookups.breaker.allows()  # load the new state (the breaker's own side connection)
    with CaptureQueriesContext(connection) as queries:
        result = lookups.lookup("wall-painting")
    item = lookups.lookup_many(["wall-painting"])[0]
    assert (result.uuid, result.source, result.fallback_used) == (None, "fallback", True)
    assert result.reason == resolver.BREAKER_OPEN
    assert result.reason.code == "LOOKUPS_DB_CIRCUIT_OPEN"
    assert item == result  # a batch item answers exactly as a single lookup
    assert len(queries) == 0
    assert lookups.metrics.raw()["counters"]["fallbacks"] == 2


def test_a_change_drops_the_cached_entry(lookups: resolver.Lookups) -> None:
    import time

    service = MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    assert lookups.lookup("wall-painting").source == "db"
    new = uuid.uuid4()
    MicroService.objects.filter(pk=service.pk).update(uuid=new)  # no signals: the trigger tells
    deadline = time.monotonic() + 1
    while lookups.cache.get("wall-painting") is not None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert lookups.lookup("wall-painting").uuid == new


UNREACHABLE = """
import json, time
from controlplane.lib import dbgate
from lookups import resolver
from lookups.api import LookupOutput, _result
lookups = resolver.get_lookups()
lookups.listen()
deadline = time.monotonic() + 20
while not dbgate.is_unreachable():  # the listener found the database away
    assert time.monotonic() < deadline, "the listener never closed the gate"
    time.sleep(0.01)
single = LookupOutput(lookups.lookup("wall-painting")).data
batch = _result(lookups.lookup_many(["wall-painting"])[0])
print(json.dumps({"single": single, "batch": batch}))
"""


def test_an_unreachable_database_answers_the_slug_only_fallback_at_once() -> None:
    answer, stderr = run_with_dead_database(UNREACHABLE)
    assert answer["single"] == fallback("wall-painting")
    assert answer["batch"] == answer["single"]  # one contract for one situation
    assert "retrying after OperationalError" not in stderr  # the closed gate: no retries


def test_ttl_and_size_come_from_settings(settings: Any, transactional_db: Any) -> None:
    settings.LOOKUP_CACHE_TTL = 12
    settings.LOOKUP_CACHE_MAX_SIZE = 3
    resolver.reset_lookups()
    cache = resolver.get_lookups().cache
    assert (cache.ttl, cache.max_size) == (12, 3)
    resolver.reset_lookups()
