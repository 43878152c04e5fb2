"""The fast subset of `make drills`, in the normal suite: bounded fuzzing, the security
probes over HTTP, the abuse drill with fewer label and breaker floods, a short
worker-crash drill, one round of the alerting drill, a short spool-faults drill and a short
flapping drill (one trip, then the dead phase that only the retry budget bounds), against
a real stack (gunicorn with 2 workers + runworker) on a database of its own on the test
server, with the flapping upstream as its provider (as in `make drills`).

The load drill and the flapping drill's every phase run in `make drills` only. The
database drills stop, restart or cut off the database server, which the rest of the suite
shares, so their bounded versions bring servers of their own: tests/reliability/
test_db_outage.py and test_db_restart.py, and tests/foundation/test_hung_database.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.reliability.drills import (
    DrillResult,
    abuse,
    alerting,
    flapping,
    fuzz,
    security,
    spool_faults,
    worker_crash,
)
from tests.reliability.drills._flapping_upstream import Upstream, provider_settings
from tests.reliability.drills.stack import Stack, fresh_database

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    running = Upstream().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Stack]:
    url = fresh_database(settings.DATABASE_URL, "controlplane_drills_ci")
    running = Stack(database_url=url, workdir=Path(tmp_path_factory.mktemp("drills")))
    running.env.update(provider_settings(upstream))
    try:
        yield running.start()
    finally:
        running.stop()


def assert_passed(result: DrillResult) -> None:
    assert result.passed, "\n".join(result.failures) + f"\nfigures: {result.figures}"


def test_fuzzing_as_each_demo_role(stack: Stack) -> None:
    # A fixed seed keeps CI repeatable; `make drills` draws a new one each run (and prints it).
    result = fuzz.run(stack, examples=5, seed=20261122, max_seconds=240)
    assert_passed(result)
    assert all(result.figures[f"{role}_cases"] > 100 for role in ("client", "support", "ops"))


def test_security_probes_over_http(stack: Stack) -> None:
    assert_passed(security.run(stack))


def test_hostile_traffic_is_bounded(stack: Stack) -> None:
    result = abuse.run(stack, flood_requests=200, label_requests=300, breaker_flood=60)
    assert_passed(result)
    assert result.figures["secret_shapes"] >= 19 and result.figures["flood_requests"] == 200


def test_a_killed_worker_cluster_loses_no_job(stack: Stack) -> None:
    result = worker_crash.run(stack, jobs=12)
    assert_passed(result)
    assert result.figures["jobs_requeued_after_kill"] >= 1


def test_ops_are_told_once_through_a_failing_receiver(stack: Stack) -> None:
    result = alerting.run(stack, rounds=1, failures_first=2)
    assert_passed(result)
    assert result.figures["successful_deliveries"] == 2 and result.figures["requests"] == 6


def test_a_full_disk_and_killed_replays_lose_no_spooled_record(stack: Stack) -> None:
    result = spool_faults.run(stack, kills=3, rows=1000, seed=20261130)
    assert_passed(result)
    assert result.figures["efbig_logged"] > 0 and result.figures["kills_mid_replay"] >= 1


def test_the_retry_budget_holds_across_four_processes(stack: Stack, upstream: Upstream) -> None:
    stack.reset_breakers()  # the fuzzer, as ops, may have force-opened the provider's breaker
    result = flapping.run(stack, upstream, phases=flapping.BUDGET_PHASES)
    assert_passed(result)
    assert result.figures["budget_phase_ratio"] <= result.figures["budget_phase_bound"] < 3
    assert result.figures["budget_phase_refused_calls"] > 0
