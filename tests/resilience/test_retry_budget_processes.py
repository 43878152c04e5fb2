"""The retry budget holds across real processes: four children call a dead upstream (a real
HTTP server on 127.0.0.1 answering 503) through ServiceClient, with a breaker that never
trips, so only the budget shared through PostgreSQL bounds their retries.

Without the budget every call makes RETRY_MAX_ATTEMPTS (3) requests. With it:

    requests <= first attempts x (1 + ratio) + floor + overshoot,

the overshoot being the documented worst case: (processes - 1) x the retries one process
can make within one sync interval (each retry waits RETRY_WAIT first). Processes deciding
alone (each from its own counts) would each get the floor: the parameters keep that figure
well above the shared bound, so the test tells shared counts from unshared ones.
"""

from __future__ import annotations

import json
import math
import subprocess
from typing import Any

import pytest

from controlplane.resilience.models import RetryBudgetBucket
from tests.conftest import PYTHON, REPO, django_child_env
from tests.resilience.budget_child import RETRY_WAIT
from tests.resilience.flaky_server import Script, flaky_server

pytestmark = pytest.mark.slow

PROCESSES = 4
CALLS = 40
RATIO = 0.2
# Large against RATIO x CALLS: unshared, each process gets it (4 x 40 = 160 retries), shared,
# the fleet does once (40). (With 5 both came to 212 requests.)
FLOOR = 40
SYNC_SECONDS = 0.2


def test_four_processes_retrying_a_dead_upstream_stay_within_the_budget(fresh_name: str) -> None:
    script = Script([(503, {})])
    env = django_child_env(
        RETRY_BUDGET_RATIO=str(RATIO),
        RETRY_BUDGET_MIN_PER_WINDOW=str(FLOOR),
        RETRY_BUDGET_WINDOW_SECONDS="60",
        RETRY_BUDGET_SYNC_SECONDS=str(SYNC_SECONDS),
    )
    with flaky_server(script) as url:
        children = [
            subprocess.Popen(
                [PYTHON, "-m", "tests.resilience.budget_child", fresh_name, url, str(CALLS)],
                cwd=REPO,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        for child in children:
            assert json.loads(child.stdout.readline()) == {"ready": True}, child.stderr.read()
        for child in children:  # every child starts at once
            child.stdin.write("go\n")
            child.stdin.flush()
        reports: list[dict[str, Any]] = []
        for child in children:
            stdout, stderr = child.communicate(timeout=120)
            assert child.returncode == 0, stderr
            reports.append(json.loads(stdout.strip().splitlines()[-1]))

    first_attempts = PROCESSES * CALLS
    per_interval = math.floor(SYNC_SECONDS / RETRY_WAIT) + 1
    overshoot = (PROCESSES - 1) * per_interval
    bound = first_attempts * (1 + RATIO) + FLOOR + overshoot  # 247
    # Each process deciding from its own counts (e.g. ignoring the shared totals): 352.
    unshared = PROCESSES * (CALLS * (1 + RATIO) + FLOOR)
    assert bound < unshared - 100 and unshared < first_attempts * 3
    assert script.requests <= bound, (script.requests, bound, reports)
    assert script.requests < first_attempts * 3  # what the code without a budget sent
    assert all(r["synced"] and r["shared"] for r in reports)  # decided on shared counts
    refused = sum(r["codes"].get("RETRY_BUDGET_EXHAUSTED", 0) for r in reports)
    assert refused > 0 and all("RETRY_BUDGET_EXHAUSTED" in r["codes"] for r in reports)
    assert sum(sum(r["codes"].values()) for r in reports) == first_attempts  # none succeeded
    # The shared counts are exact: every process's first attempts and retries arrived.
    totals = RetryBudgetBucket.objects.filter(upstream=fresh_name).totals_by_upstream()
    counted = totals[fresh_name]
    assert counted["first_attempts"] == first_attempts
    assert counted["retries"] == script.requests - first_attempts
