"""A process that goes quiet still shares its last retry-budget counts: its sharing thread
syncs them within about two sync intervals, though no call comes to do it (so the other
processes decide with them); in a forked child too, whose thread is its own. The thread
never makes a caller wait."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from controlplane.resilience.budget import RetryBudget, budget_for
from controlplane.resilience.models import RetryBudgetBucket
from tests.conftest import PYTHON, REPO, django_child_env

SYNC_SECONDS = 0.2


def stored(upstream: str) -> tuple[int, int, int]:
    totals = RetryBudgetBucket.objects.filter(upstream=upstream).totals_by_upstream()
    counts = totals.get(upstream, {"first_attempts": 0, "retries": 0, "refused": 0})
    return counts["first_attempts"], counts["retries"], counts["refused"]


def until(condition: Any, seconds: float) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` passed (the thread's pace, not ours)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_quiet_process_shares_its_last_counts(fresh_name: str, settings: Any) -> None:
    settings.RETRY_BUDGET_SYNC_SECONDS = SYNC_SECONDS
    budget = budget_for(fresh_name)  # this process's budget for the upstream, as clients use
    assert budget.sync()  # a call just synced: the next sync is a whole interval away
    for _ in range(3):
        budget.count_first_attempt()
    assert budget.spend_retry()
    # ... and then no call comes. Its counts reach the database all the same:
    assert until(lambda: stored(fresh_name) == (3, 1, 0), 10 * SYNC_SECONDS), stored(fresh_name)
    assert budget.pending.events == 0
    another_process = RetryBudget.from_settings(fresh_name)
    assert another_process.sync()
    totals = another_process.totals()
    assert (totals.first_attempts, totals.retries) == (3, 1)  # decides with them


def test_a_sync_under_way_never_makes_a_caller_wait(fresh_name: str, settings: Any) -> None:
    settings.RETRY_BUDGET_SYNC_SECONDS = SYNC_SECONDS
    budget = budget_for(fresh_name)
    with budget.sync_lock:  # as while the sharing thread's sync waits on the database
        started = time.monotonic()
        budget.count_first_attempt()
        assert budget.spend_retry()
        assert not budget.sync()  # decides from what is known instead of waiting
        assert time.monotonic() - started < 0.1


FORKED = """
import json, multiprocessing, sys, time
import django
django.setup()
from controlplane.resilience.budget import budget_for

budget = budget_for(sys.argv[1])
budget.count_first_attempt()  # the parent's sharing thread is running now

def quiet_child():
    budget.count_first_attempt()
    budget.count_first_attempt()
    deadline = time.monotonic() + 5
    while budget.pending.events and time.monotonic() < deadline:
        time.sleep(0.01)
    sys.exit(0 if not budget.pending.events else 1)

child = multiprocessing.get_context("fork").Process(target=quiet_child)
child.start()
child.join(30)
print(json.dumps({"child_shared": child.exitcode == 0}))
"""


@pytest.mark.slow
def test_a_forked_child_shares_its_counts_with_a_thread_of_its_own(fresh_name: str) -> None:
    result = subprocess.run(
        [PYTHON, "-c", FORKED, fresh_name],
        cwd=REPO,
        env=django_child_env(RETRY_BUDGET_SYNC_SECONDS=str(SYNC_SECONDS)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"child_shared": True}
    assert stored(fresh_name)[0] >= 2  # the child's two (and the parent's, if shared by then)
