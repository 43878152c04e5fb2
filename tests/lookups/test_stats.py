"""The stats say each cache's size, max size and TTL, and the stale answers, per process and
summed over every running process, in the API and on the admin page."""

from __future__ import annotations

from typing import Any

from lookups import resolver, stats
from lookups.metrics import LookupMetrics
from lookups.models import MicroService, ProcessStats
from tests.lookups.conftest import settle


def test_the_api_gives_size_max_size_ttl_and_stale_answers(
    lookups: resolver.Lookups, support_user: Any, api_as: Any, settings: Any
) -> None:
    settings.LOOKUP_STATS_FLUSH_SECONDS = 3600  # only the flushes of this test
    MicroService.objects.bulk_create(MicroService(slug=f"service-{n}") for n in range(3))
    settle(lookups)
    lookups.warm()
    lookups.metrics.count("lookups", "hits", "stale")  # as a stale answer counts itself
    other = LookupMetrics()
    for _ in range(4):
        other.count("lookups", "hits", "stale")
    ProcessStats.objects.create(
        process="other:1:worker",
        data={**other.raw(), "minutes": other.minutes()}
        | {"cache_size": 40, "max_size": 500, "ttl_seconds": 60.0},
    )
    body = api_as(support_user).get("/api/v1/lookups/stats/").json()
    mine = body["process"]
    assert (mine["cache_size"], mine["max_size"], mine["ttl_seconds"], mine["stale"]) == (
        3,
        settings.LOOKUP_CACHE_MAX_SIZE,
        settings.LOOKUP_CACHE_TTL,
        1,
    )
    assert mine["windows"]["5m"]["stale"] == 1
    everyone = body["aggregate"]
    assert everyone["processes"] == 2
    assert (everyone["cache_size"], everyone["max_size"], everyone["stale"]) == (
        43,
        500 + settings.LOOKUP_CACHE_MAX_SIZE,
        5,
    )
    assert everyone["ttl_seconds"] == max(60.0, settings.LOOKUP_CACHE_TTL)
    assert everyone["windows"]["1h"]["stale"] == 5
    by_name = {p["name"]: p for p in body["processes"]}
    assert (by_name["other:1:worker"]["cache_size"], by_name["other:1:worker"]["stale"]) == (40, 4)
    assert by_name[stats.process_name()]["max_size"] == settings.LOOKUP_CACHE_MAX_SIZE


def test_the_admin_page_shows_the_cache_figures(
    lookups: resolver.Lookups, support_user: Any, client: Any, settings: Any
) -> None:
    settings.LOOKUP_CACHE_TTL = 1234
    resolver.reset_lookups()
    service = resolver.get_lookups()
    service.metrics.count("lookups", "hits", "stale")
    client.force_login(support_user)
    page = client.get("/admin/lookups/microservice/stats/").content.decode()
    cache_table = page[page.index("<h2>Cache</h2>") :].split("</table>")[0]
    assert "<th>max size</th><th>TTL (s)</th><th>stale answers (since start)</th>" in cache_table
    mine = cache_table[cache_table.index("this process") :]
    assert f"<td>0</td><td>{settings.LOOKUP_CACHE_MAX_SIZE}</td>" in mine
    assert "<td>1234</td><td>1</td>" in mine
