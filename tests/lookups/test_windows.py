"""Alert flags are computed over the last 5 minutes and the last hour, never lifetime totals,
summed over every process through PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

from lookups import resolver, stats
from lookups.metrics import ALERTS, LookupMetrics, report, thresholds
from lookups.models import ProcessStats


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # a minute boundary

    def __call__(self) -> float:
        return self.now


def _report(metrics: LookupMetrics) -> dict[str, Any]:
    return report(metrics.raw(), [metrics.minutes()], metrics.minute())


def test_a_fresh_drop_in_hit_rate_raises_the_alert_at_once() -> None:
    clock = Clock()
    metrics = LookupMetrics(clock=clock)
    for _ in range(1000):
        metrics.count("lookups", "hits", path="cache", seconds=1e-5)
    clock.now += 2 * 3600  # two healthy hours ago; now everything misses
    for _ in range(10):
        metrics.count("lookups", "misses", "found", path="db", seconds=0.002)
    summary = _report(metrics)
    assert summary["hit_rate"] == round(1000 / 1010, 4)  # lifetime: looks fine
    assert summary["windows"]["5m"]["hit_rate"] == 0.0
    assert summary["windows"]["1h"]["hit_rate"] == 0.0
    assert summary["alerts"]["hit_rate"] is True
    assert summary["windows"]["5m"]["alerts"]["hit_rate"] is True


def test_the_windows_forget_what_is_older_than_they_are() -> None:
    clock = Clock()
    metrics = LookupMetrics(clock=clock)
    for _ in range(10):
        metrics.count("lookups", "misses", "not_found")
    clock.now += 30 * 60  # half an hour later: outside 5 minutes, inside the hour
    metrics.count("lookups", "hits", path="cache", seconds=1e-5)
    summary = _report(metrics)
    assert summary["windows"]["5m"]["hit_rate"] == 1.0
    assert summary["windows"]["1h"]["hit_rate"] == round(1 / 11, 4)
    assert summary["alerts"]["hit_rate"] is True  # the hour still says so
    assert summary["windows"]["5m"]["alerts"]["hit_rate"] is False
    clock.now += 31 * 60  # the misses are past the hour: gone from memory too
    metrics.count("lookups", "hits", path="cache", seconds=1e-5)
    assert _report(metrics)["alerts"]["hit_rate"] is False
    assert len(metrics.minutes()) == 2


def test_each_threshold_of_the_issue() -> None:
    assert thresholds() == {
        "hit_rate_below": 0.5,
        "cache_avg_ms_above": 5.0,
        "db_avg_ms_above": 100.0,
        "success_rate_below": 0.9,
        "fallback_rate_above": 0.2,
        "breaker_opens_above": 5,
    }
    clock = Clock()
    metrics = LookupMetrics(clock=clock)
    metrics.count("lookups", "hits", path="cache", seconds=0.006)  # a 6 ms cache lookup
    metrics.count("lookups", "misses", "found", path="db", seconds=0.15)  # a 150 ms query
    for _ in range(5):
        metrics.count("breaker_opens")
    alerts = _report(metrics)["alerts"]
    assert alerts == {
        "hit_rate": False,  # 1 of 2: 50 % is not below 50 %
        "cache_avg_ms": True,
        "db_avg_ms": True,
        "success_rate": False,
        "fallback_rate": False,
        "breaker_opens": False,  # 5 is not more than 5
    }
    clock.now += 50 * 60
    metrics.count("breaker_opens")  # a sixth within the hour
    metrics.count("lookups", "misses", "fallbacks")
    later = _report(metrics)
    assert later["windows"]["1h"]["alerts"]["breaker_opens"] is True
    assert later["windows"]["5m"]["alerts"]["breaker_opens"] is False
    assert later["windows"]["5m"]["alerts"]["fallback_rate"] is True
    assert later["windows"]["5m"]["alerts"]["success_rate"] is True
    assert set(later["alerts"]) == set(ALERTS)


def _row(process: str, metrics: LookupMetrics, minutes_ago: int = 0) -> None:
    ProcessStats.objects.create(
        process=process,
        data={**metrics.raw(), "minutes": metrics.minutes(), "cache_size": 1, "max_size": 100},
    )
    if minutes_ago:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE lookups_processstats SET updated_at = now() - make_interval(mins => %s)"
                " WHERE process = %s",
                [minutes_ago, process],
            )


def test_the_windows_add_up_every_process_including_one_that_stopped_within_the_hour(
    lookups: resolver.Lookups, settings: Any
) -> None:
    settings.LOOKUP_STATS_FLUSH_SECONDS = 3600  # only the flushes of this test
    now = time.time()
    running, stopped = Clock(), Clock()
    running.now, stopped.now = now, now - 20 * 60
    busy = LookupMetrics(clock=running)
    for _ in range(30):
        busy.count("lookups", "misses", "not_found")
    gone = LookupMetrics(clock=stopped)
    for _ in range(70):
        gone.count("lookups", "hits", path="cache", seconds=1e-5)
    _row("other:1:web", busy)
    _row("gone:2:worker", gone, minutes_ago=20)
    body = stats.collect(lookups.metrics, lookups.cache)
    aggregate = body["aggregate"]
    assert aggregate["processes"] == 1  # the stopped one is not running
    assert [p["name"] for p in body["processes"]] == ["other:1:web"]
    assert aggregate["windows"]["5m"]["lookups"] == 30
    assert aggregate["windows"]["5m"]["hit_rate"] == 0.0
    assert aggregate["windows"]["1h"]["lookups"] == 100
    assert aggregate["windows"]["1h"]["hit_rate"] == 0.7
    assert aggregate["alerts"]["hit_rate"] is True
    assert aggregate["lookups"] == 30  # lifetime: the running processes


def test_the_stats_page_marks_what_the_last_five_minutes_cross(
    lookups: resolver.Lookups, support_user: Any, client: Any
) -> None:
    clock = Clock()
    lookups.metrics.clock = clock
    for _ in range(100):
        lookups.metrics.count("lookups", "hits", path="cache", seconds=1e-5)
    clock.now += 3 * 3600
    lookups.metrics.count("lookups", "misses", "not_found")
    client.force_login(support_user)
    page = client.get("/admin/lookups/microservice/stats/").content.decode()
    assert "last 5 min" in page and "last hour" in page
    this_process = page[page.index("This process") :]
    hit_rate_row = this_process[this_process.index("<th>hit rate</th>") :].split("</tr>")[0]
    # 5 minutes and the hour: 0.0 in red; since start 0.9901, unmarked
    assert hit_rate_row.count('class="alert-cell"') == 2
    assert "0.9901" in hit_rate_row
