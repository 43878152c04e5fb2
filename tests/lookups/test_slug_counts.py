"""Per-slug hits, misses, fallbacks and last seen, summed over processes through PostgreSQL
with the stats flush (never a query per lookup), bounded, with a "top misses" view."""

from __future__ import annotations

import subprocess
from contextlib import suppress
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from controlplane.breakers.actions import override_breaker
from lookups import exceptions, resolver, slug_counts
from lookups.models import MicroService, SlugStats
from lookups.slug_counts import SlugCounts
from tests.conftest import PYTHON, REPO, django_child_env
from tests.lookups.conftest import settle


@pytest.fixture
def quiet(settings: Any) -> None:
    """No background flush in the middle of a test: only the ones it makes."""
    settings.LOOKUP_STATS_FLUSH_SECONDS = 3600


def figures() -> dict[str, tuple[int, int, int]]:
    return {s.slug: (s.hits, s.misses, s.fallbacks) for s in SlugStats.objects.all()}


def test_each_slug_is_counted_and_flushed_in_one_statement(
    lookups: resolver.Lookups, quiet: None
) -> None:
    MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(10):
            lookups.lookup("wall-painting")  # one miss, then hits
        for _ in range(3):
            with suppress(exceptions.MicroServiceNotFoundError):
                lookups.lookup("roof-repair")
        with suppress(exceptions.InvalidSlugError):
            lookups.lookup("Not A Slug")  # not a slug: never counted
        lookups.lookup_many(["wall-painting", "roof-repair", "Bad Slug"])
    assert not [q for q in queries if "lookups_slugstats" in q["sql"]]
    assert SlugStats.objects.count() == 0
    with CaptureQueriesContext(connection) as queries:
        lookups._maybe_flush_stats(force=True)
    assert len([q for q in queries if "lookups_slugstats" in q["sql"]]) == 2  # add, trim
    assert figures() == {"wall-painting": (10, 1, 0), "roof-repair": (0, 4, 0)}


def test_processes_add_up(lookups: resolver.Lookups, quiet: None) -> None:
    here, there = SlugCounts(), SlugCounts()
    here.add("wall-painting", hits=5, misses=1)
    there.add("wall-painting", hits=7, misses=1)
    there.add("roof-repair", misses=2, fallbacks=2)
    slug_counts.flush(here)
    first_seen = SlugStats.objects.get(slug="wall-painting").last_seen
    slug_counts.flush(there)
    assert figures() == {"wall-painting": (12, 2, 0), "roof-repair": (0, 2, 2)}
    assert SlugStats.objects.get(slug="wall-painting").last_seen >= first_seen
    slug_counts.flush(there)  # taken: nothing is counted twice
    assert figures()["wall-painting"] == (12, 2, 0)


def test_an_open_breaker_counts_fallbacks(
    lookups: resolver.Lookups, ops_user: Any, quiet: None
) -> None:
    lookups.breaker.allows()
    override_breaker(name=resolver.BREAKER, action="force_open", reason="drill", actor=ops_user)
    lookups.breaker.runtime.registry.invalidate(resolver.BREAKER)
    lookups.breaker.allows()
    lookups.lookup("wall-painting")
    lookups.lookup_many(["wall-painting", "roof-repair"])
    lookups._maybe_flush_stats(force=True)
    assert figures() == {"wall-painting": (0, 2, 2), "roof-repair": (0, 1, 1)}


def test_invented_slugs_cannot_grow_the_table_or_the_memory(
    lookups: resolver.Lookups, quiet: None, settings: Any
) -> None:
    settings.LOOKUP_SLUG_STATS_MAX = 5
    MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    for _ in range(20):
        lookups.lookup("wall-painting")
    for n in range(40):
        with suppress(exceptions.MicroServiceNotFoundError):
            lookups.lookup(f"invented-{n}")
        assert len(lookups.slug_counts.counts) <= 2 * settings.LOOKUP_SLUG_STATS_MAX
    lookups._maybe_flush_stats(force=True)
    assert SlugStats.objects.count() == 5
    assert figures()["wall-painting"] == (19, 1, 0)  # the busiest stays
    lookups.lookup_many([f"another-{n}" for n in range(8)])
    lookups._maybe_flush_stats(force=True)
    assert SlugStats.objects.count() == 5
    assert "wall-painting" in figures()


def seen_ago(slug: str, interval: str) -> None:
    """Inject time: ``slug`` was last looked up ``interval`` ago (database clock)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE lookups_slugstats SET last_seen = now() - %s::interval WHERE slug = %s",
            [interval, slug],
        )


def test_a_slug_clients_start_using_gets_into_a_full_table(
    lookups: resolver.Lookups, quiet: None, settings: Any
) -> None:
    settings.LOOKUP_SLUG_STATS_MAX = 3
    for slug in ("once-busy-a", "once-busy-b", "once-busy-c"):
        SlugStats.objects.create(slug=slug, hits=1000, misses=500)
        seen_ago(slug, "2 days")  # busy long ago, quiet since
    new = SlugCounts()
    new.add("brand-new", misses=1)
    slug_counts.flush(new)
    assert SlugStats.objects.count() == 3
    assert "brand-new" in figures()  # (ranked by lifetime counts alone it was deleted at once)
    assert [t["slug"] for t in slug_counts.top_misses()][-1] == "brand-new"


def test_a_flood_of_invented_slugs_leaves_the_slugs_in_use(
    lookups: resolver.Lookups, quiet: None, settings: Any
) -> None:
    settings.LOOKUP_SLUG_STATS_MAX = 4
    busy = SlugCounts()
    busy.add("used-now", hits=40, misses=2)
    busy.add("used-this-morning", hits=3, misses=1)
    busy.add("used-last-week", hits=5000, misses=900)
    slug_counts.flush(busy)
    seen_ago("used-this-morning", "5 hours")
    seen_ago("used-last-week", "6 days")
    flood = SlugCounts()
    for n in range(10):
        flood.add(f"invented-{n}", misses=1)
    slug_counts.flush(flood)
    kept = figures()
    assert len(kept) == 4
    assert {"used-now", "used-this-morning"} <= set(kept)  # in use: a flood cannot push out
    assert "used-last-week" not in kept  # gone quiet: what a full table gives up first
    assert len([slug for slug in kept if slug.startswith("invented-")]) == 2


def test_slugs_not_seen_for_the_retention_are_purged(
    lookups: resolver.Lookups, quiet: None, settings: Any
) -> None:
    settings.LOOKUP_SLUG_STATS_RETENTION_DAYS = 7
    SlugStats.objects.create(slug="gone-quiet", misses=100)
    SlugStats.objects.create(slug="still-used", misses=1)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE lookups_slugstats SET last_seen = now() - interval '8 days'"
            " WHERE slug = 'gone-quiet'"
        )
    call_command("purge_old_data", "--only", "lookup-reports", stdout=StringIO())
    assert list(SlugStats.objects.values_list("slug", flat=True)) == ["still-used"]


def test_top_misses_in_the_api_and_on_the_stats_page(
    lookups: resolver.Lookups, quiet: None, support_user: Any, api_as: Any, client: Any
) -> None:
    MicroService.objects.create(slug="registered-but-cold")
    SlugStats.objects.create(slug="registered-but-cold", hits=50, misses=30)
    SlugStats.objects.create(slug="never-registered", misses=90, fallbacks=3)
    SlugStats.objects.create(slug="always-hit", hits=1000)
    top = api_as(support_user).get("/api/v1/lookups/stats/").json()["top_misses"]
    assert [(t["slug"], t["registered"], t["misses"], t["fallbacks"], t["hits"]) for t in top] == [
        ("never-registered", False, 90, 3, 0),
        ("registered-but-cold", True, 30, 0, 50),
    ]
    assert top[0]["last_seen"]
    client.force_login(support_user)
    page = client.get("/admin/lookups/microservice/stats/").content.decode()
    table = page[page.index("<h2>Top misses</h2>") :].split("</table>")[0]
    assert table.index("never-registered") < table.index("registered-but-cold")
    assert "always-hit" not in table
    every_slug = client.get("/admin/lookups/slugstats/", {"q": "always"}).content.decode()
    assert "always-hit" in every_slug and "never-registered" not in every_slug


CHILD = """
import json, time
from controlplane.lib import notifications
from lookups import resolver
lookups = resolver.get_lookups()
lookups.listen()
deadline = time.time() + 10
while not notifications.listener.is_listening(resolver.CHANNEL) and time.time() < deadline:
    time.sleep(0.01)
for _ in range(200):
    lookups.lookup("wall-painting")
time.sleep(2)  # its upkeep flushes meanwhile; it never flushes by itself here
print(json.dumps({"done": True}))
"""


@pytest.mark.slow
def test_another_process_adds_its_counts(lookups: resolver.Lookups, quiet: None) -> None:
    MicroService.objects.create(slug="wall-painting")
    settle(lookups)
    for _ in range(5):
        lookups.lookup("wall-painting")
    lookups._maybe_flush_stats(force=True)
    assert figures() == {"wall-painting": (4, 1, 0)}
    child = subprocess.run(
        [PYTHON, "-c", "import django; django.setup()\n" + CHILD],
        cwd=REPO,
        env=django_child_env(LOOKUP_STATS_FLUSH_SECONDS="0.5"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    hits, misses, _ = figures()["wall-painting"]
    assert (hits, misses) == (4 + 199, 1 + 1)
