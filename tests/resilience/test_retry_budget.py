"""The retry budget's decisions in one process, with an injected clock.

The shared database is out of the picture here (the budget's side connection points at a
server that does not exist, a real connection failure), so the budget decides from this
process's counts: what it does whenever PostgreSQL is unreachable.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.lib import sidedb
from controlplane.resilience.budget import SLOTS, Counts, RetryBudget, RetryBudgetExhaustedError
from controlplane.resilience.retry import EarlierAttemptFailed, RetryPolicy, continuing

REQUEST = httpx.Request("GET", "http://upstream/")
NO_DATABASE = sidedb.SideConnection(lambda: {"host": "/nonexistent-socket-dir", "dbname": "x"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# The budget settings these tests reason with (test_retry_budget_shared uses them too).
CONFIG: dict[str, Any] = {
    "ratio": 0.2,
    "floor": 2,
    "window_seconds": 60.0,
    "sync_seconds": 1.0,
    "sync_calls": 100,
}


def make_budget(clock: Clock, **options: Any) -> RetryBudget:
    return RetryBudget("budget-unit", side=NO_DATABASE, clock=clock, **{**CONFIG, **options})


def server_error() -> httpx.HTTPStatusError:
    response = httpx.Response(503, request=REQUEST)
    return httpx.HTTPStatusError("503", request=REQUEST, response=response)


def spend(budget: RetryBudget, times: int) -> list[bool]:
    return [budget.spend_retry() for _ in range(times)]


def test_it_allows_the_floor_then_a_share_of_first_attempts() -> None:
    budget = make_budget(Clock())
    assert spend(budget, 3) == [True, True, False]  # the floor: 2 retries with no traffic
    for _ in range(10):
        budget.count_first_attempt()
    assert spend(budget, 3) == [True, True, False]  # + 20 % of 10 first attempts
    for _ in range(4):
        budget.count_first_attempt()
    assert spend(budget, 2) == [False, False]  # 2 + 0.2 x 14 = 4.8: the 5th retry is refused
    budget.count_first_attempt()
    assert spend(budget, 2) == [True, False]  # 2 + 0.2 x 15 = 5
    totals = budget.totals()
    assert (totals.first_attempts, totals.retries, totals.refused) == (15, 5, 5)


def test_the_window_slides() -> None:
    clock = Clock()
    budget = make_budget(clock, floor=0, window_seconds=60.0)
    for _ in range(10):
        budget.count_first_attempt()
    assert spend(budget, 3) == [True, True, False]
    clock.now += 30
    assert spend(budget, 1) == [False]  # still within the window
    clock.now += 60 / SLOTS * (SLOTS - 1)  # the counts' bucket has left the window
    assert budget.totals().first_attempts == 0
    assert spend(budget, 1) == [False]  # no first attempts, no floor: nothing to spend
    for _ in range(5):
        budget.count_first_attempt()
    assert spend(budget, 2) == [True, False]  # only the new first attempts count
    assert len(budget.local) <= SLOTS  # old buckets are dropped, not kept


def test_the_first_attempt_is_never_refused_and_the_refusal_keeps_the_failure() -> None:
    budget = make_budget(Clock(), floor=0, ratio=0.0)
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise server_error()

    policy = RetryPolicy(max_attempts=3, jitter="none", initial_delay=0.0)
    for _ in range(3):
        with pytest.raises(RetryBudgetExhaustedError) as refused:
            policy.call(fail, sleep=lambda _: None, budget=budget)
    assert len(calls) == 3  # each call's first attempt went out; no retry did
    error = refused.value
    assert (error.code, error.http_status, error.retryable) == ("RETRY_BUDGET_EXHAUSTED", 503, True)
    assert isinstance(error.original, httpx.HTTPStatusError)
    assert "not retried: HTTPStatusError: 503" in error.technical_message
    assert error.context["retry_budget"]["first_attempts"] == 3
    assert error.context["retry_budget"]["shared"] is False  # decided without the database
    assert error.__cause__ is error.original
    assert budget.totals().refused == 3


def test_a_first_attempt_the_breaker_refused_earns_no_retries() -> None:
    budget = make_budget(Clock(), floor=0)

    def refused() -> None:
        raise CircuitOpenError("budget-unit", 5.0, "open")

    for _ in range(10):
        with pytest.raises(CircuitOpenError):
            RetryPolicy(max_attempts=3).call(refused, budget=budget)
    assert budget.totals().first_attempts == 0


def test_a_continued_calls_first_attempt_is_a_retry_the_budget_must_grant() -> None:
    # A job's later attempt repeats its upstream calls: retries of the same logical call.
    budget = make_budget(Clock(), floor=2, ratio=0.0)
    sent: list[str] = []
    policy = RetryPolicy(max_attempts=1)

    def call() -> str:
        sent.append("sync")
        return "ok"

    async def acall() -> str:
        sent.append("async")
        return "ok"

    with continuing("attempt 1 of job j failed (X_SERVER_ERROR)"):
        assert policy.call(call, budget=budget) == "ok"
        assert asyncio.run(policy.acall(acall, budget=budget)) == "ok"
        with pytest.raises(RetryBudgetExhaustedError) as refused:
            policy.call(call, budget=budget)
    assert sent == ["sync", "async"]  # the refused one was never sent
    assert isinstance(refused.value.original, EarlierAttemptFailed)
    assert (
        "not retried: EarlierAttemptFailed: attempt 1 of job j" in refused.value.technical_message
    )
    assert budget.totals() == Counts(first_attempts=0, retries=2, refused=1)  # none counted first
    assert policy.call(call, budget=budget) == "ok"  # outside: a first attempt again
    assert budget.totals().first_attempts == 1


def test_unsynced_counts_are_synced_once_per_interval_or_batch() -> None:
    clock = Clock()
    budget = make_budget(clock, sync_seconds=1.0, sync_calls=5)
    assert budget.sync_due()  # never synced
    assert budget.sync() is False  # the database is away: counted locally, nothing raised
    assert budget.degraded
    assert not budget.sync_due()  # the database is tried again at most once a second
    for _ in range(7):
        budget.count_first_attempt()
    assert not budget.sync_due()
    clock.now += 1.0
    assert budget.sync_due()
    assert budget.pending.first_attempts == 7  # kept for when the database answers


def test_counts_older_than_the_window_are_not_synced_late() -> None:
    clock = Clock()
    budget = make_budget(clock)
    budget.count_first_attempt()
    clock.now += 61
    budget.sync()
    assert budget.pending.events == 0


def test_a_database_away_never_blocks_a_decision() -> None:
    budget = make_budget(Clock())
    started = time.monotonic()
    for _ in range(50):
        budget.count_first_attempt()
        budget.sync_if_due()
        budget.spend_retry()
    assert time.monotonic() - started < 1.0
    assert budget.degraded and not budget.is_shared
