"""The retry budget shared through PostgreSQL: one statement per sync adds a process's
counts and reads the window's totals over every process; decisions in between are local.

Two RetryBudget objects for one upstream stand for two processes (each has its own counts
and last totals; the cross-process test with real processes is test_retry_budget_processes).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from controlplane.resilience.budget import SLOTS, RetryBudget
from controlplane.resilience.models import RetryBudgetBucket
from tests.resilience.test_retry_budget import CONFIG, Clock


@pytest.fixture
def upstream(fresh_name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM resilience_retrybudgetbucket")
    return fresh_name


def process(upstream: str, clock: Clock | None = None, **options: Any) -> RetryBudget:
    return RetryBudget(upstream, clock=clock or Clock(), **{**CONFIG, **options})


def stored(upstream: str) -> tuple[int, int, int]:
    """The upstream's first attempts, retries and refusals in the database (every bucket:
    a test may cross from one bucket into the next)."""
    totals = RetryBudgetBucket.objects.filter(upstream=upstream).totals_by_upstream()
    counts = totals.get(upstream, {"first_attempts": 0, "retries": 0, "refused": 0})
    return counts["first_attempts"], counts["retries"], counts["refused"]


def test_one_statement_adds_the_counts_and_reads_every_processes_totals(upstream: str) -> None:
    one, two = process(upstream), process(upstream)
    for _ in range(10):
        one.count_first_attempt()
    assert one.spend_retry()
    assert one.sync()
    for _ in range(5):
        two.count_first_attempt()
    assert two.sync()

    assert stored(upstream) == (15, 1, 0)  # both processes' counts in one bucket
    totals = two.totals()
    assert (totals.first_attempts, totals.retries) == (15, 1)  # two sees one's counts
    assert two.is_shared
    assert (one.pending.events, two.pending.events) == (0, 0)


def test_decisions_between_syncs_use_the_last_totals_plus_unsynced_counts(upstream: str) -> None:
    one, two = process(upstream, floor=0), process(upstream, floor=0)
    for _ in range(20):
        one.count_first_attempt()
    one.sync()
    two.sync()  # two knows: 20 first attempts, 0 retries -> 4 retries allowed
    assert [one.spend_retry() for _ in range(4)] == [True] * 4  # one spends them all, unsynced
    # two cannot see that yet: the overshoot the budget documents (one sync interval).
    assert two.spend_retry()
    assert one.sync() and two.sync()
    assert not two.spend_retry()  # now it knows
    two.sync()
    assert stored(upstream) == (20, 5, 1)


def test_no_round_trip_per_call(upstream: str) -> None:
    clock = Clock()
    budget = process(upstream, clock, sync_seconds=1.0, sync_calls=50)
    budget.sync()  # the first sync: nothing counted yet
    for _ in range(49):
        budget.count_first_attempt()
        budget.sync_if_due()
    assert stored(upstream) == (0, 0, 0)  # 49 calls within a second: not one statement
    budget.count_first_attempt()
    budget.sync_if_due()
    assert stored(upstream) == (50, 0, 0)  # the 50th: one statement with all of them
    budget.count_first_attempt()
    clock.now += 1.0
    budget.sync_if_due()
    assert stored(upstream) == (51, 0, 0)  # a second later: the one counted since


def test_the_window_slides_on_the_database_clock(upstream: str) -> None:
    budget = process(upstream, floor=0, window_seconds=60.0)
    for _ in range(10):
        budget.count_first_attempt()
    budget.sync()
    assert budget.totals().first_attempts == 10
    with connection.cursor() as cursor:  # inject time: that bucket began 55 s ago
        cursor.execute(
            "UPDATE resilience_retrybudgetbucket SET started_at = started_at - interval '55 s'"
            " WHERE upstream = %s",
            [upstream],
        )
    budget.sync()
    assert budget.totals().first_attempts == 10  # still inside the 60 s window
    with connection.cursor() as cursor:  # ... and now 65 s ago
        cursor.execute(
            "UPDATE resilience_retrybudgetbucket SET started_at = started_at - interval '10 s'"
            " WHERE upstream = %s",
            [upstream],
        )
    budget.sync()
    assert budget.totals().first_attempts == 0
    assert not budget.spend_retry()
    # The table keeps a fixed ring of slots per upstream, whatever the traffic.
    assert RetryBudgetBucket.objects.filter(upstream=upstream).count() <= SLOTS


def test_a_slot_whose_bucket_went_by_starts_again(upstream: str) -> None:
    budget = process(upstream, window_seconds=12.0)  # 1 s buckets
    budget.count_first_attempt()
    budget.sync()
    with connection.cursor() as cursor:  # inject time: the row is one whole ring old
        cursor.execute(
            "UPDATE resilience_retrybudgetbucket SET started_at = started_at - interval '12 s',"
            " retries = 7 WHERE upstream = %s",
            [upstream],
        )
    budget.count_first_attempt()
    budget.sync()
    assert stored(upstream) == (1, 0, 0)  # not 2 and 7: the old bucket's counts are gone
    assert budget.totals().first_attempts == 1


def test_after_an_outage_unsynced_counts_reach_the_database(upstream: str) -> None:
    from controlplane.lib import sidedb

    budget = process(upstream)
    real = budget._side
    budget._side = sidedb.SideConnection(lambda: {"host": "/nonexistent", "dbname": "x"})
    for _ in range(3):
        budget.count_first_attempt()
    assert not budget.sync()
    assert budget.degraded
    budget._side = real
    budget.retry_database_at = 0  # inject time: a second went by
    assert budget.sync()
    assert not budget.degraded
    assert stored(upstream) == (3, 0, 0)


def test_health_shows_each_upstreams_window(upstream: str, client: Any, settings: Any) -> None:
    settings.RETRY_BUDGET_RATIO, settings.RETRY_BUDGET_MIN_PER_WINDOW = 0.0, 1
    budget = RetryBudget.from_settings(upstream)
    budget.count_first_attempt()
    assert budget.spend_retry() and not budget.spend_retry()
    budget.sync()
    check = client.get("/api/v1/health/").json()["checks"]["retry_budgets"]
    assert check["status"] == "degraded"
    assert check["refusing"] == [upstream]
    assert check["upstreams"][upstream] == {
        "first_attempts": 1,
        "retries": 1,
        "refused": 1,
        "allowed_retries": 1,
    }


def test_health_lists_as_refusing_only_the_upstreams_refusing_now(
    upstream: str, client: Any, settings: Any
) -> None:
    """Refusing now: in the newest two buckets (60 s window: 5 s buckets), not anywhere in the
    window, or a single refusal would keep health degraded for a minute."""
    settings.RETRY_BUDGET_RATIO, settings.RETRY_BUDGET_MIN_PER_WINDOW = 0.0, 1
    settings.RETRY_BUDGET_WINDOW_SECONDS = 60.0
    budget = RetryBudget.from_settings(upstream)
    budget.count_first_attempt()
    assert budget.spend_retry() and not budget.spend_retry()
    budget.sync()

    def health() -> dict[str, Any]:
        return client.get("/api/v1/health/").json()["checks"]["retry_budgets"]

    def refused_ago(seconds: int) -> None:  # inject time: the bucket began that long ago
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE resilience_retrybudgetbucket SET started_at = date_bin('5 seconds',"
                " now(), 'epoch') - make_interval(secs => %s) WHERE upstream = %s",
                [seconds, upstream],
            )

    refused_ago(5)  # the bucket before the current one: still now
    assert (health()["status"], health()["refusing"]) == ("degraded", [upstream])
    refused_ago(10)  # two buckets back: 10 to 15 s ago, within the window but over
    check = health()
    assert (check["status"], check["refusing"]) == ("healthy", [])
    assert check["upstreams"][upstream]["refused"] == 1  # the window still counts it
