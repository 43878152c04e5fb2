"""runworker's shutdown always ends: with the database down, and with a handler stuck in C.

Each test runs a real runworker and checks every process of its tree, not just the
top one: the sentinel and its workers live in a process group of their own.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import psutil
import pytest

from controlplane.lib.processes import alive
from jobs.actions import create_job
from jobs.maintenance import run_maintenance
from jobs.models import Job
from tests.db_proxy import DatabaseProxy
from tests.jobs import stuck_kinds
from tests.jobs.conftest import wait_status

pytestmark = pytest.mark.slow

DRAIN = 3.0
BOUND = DRAIN + 5  # "within the drain time plus a few seconds"


@pytest.fixture
def leftovers() -> Iterator[list[psutil.Process]]:
    """Processes a test saw; whatever still runs at the end is killed (so a failing run
    leaves nothing behind on the machine)."""
    seen: list[psutil.Process] = []
    yield seen
    for process in alive(seen):
        with suppress(psutil.Error):
            process.kill()


def stop_and_time(worker: Any, every_process: bool = False) -> float:
    started = time.monotonic()
    for process in worker.tree() if every_process else [psutil.Process(worker.proc.pid)]:
        process.send_signal(signal.SIGTERM)  # every_process: systemd's default
    with suppress(Exception):
        worker.proc.wait(timeout=BOUND + 10)
    return time.monotonic() - started


@pytest.mark.parametrize("outage", ["stopped", "hung"])
def test_sigterm_with_the_database_down_ends_every_process_in_bounded_time(
    outage: str, start_worker: Any, leftovers: list[psutil.Process]
) -> None:
    """Stopped: every query fails at once. Hung: nothing answers, not even a connect."""
    with DatabaseProxy.for_test_database() as database:
        worker = start_worker(
            stuck_kinds.__name__, DATABASE_URL=database.url(), JOB_DRAIN_SECONDS=str(DRAIN)
        )
        job = create_job(kind="test.stuck_in_c", payload={})[0]
        wait_status(job.id, {"running"})
        leftovers += worker.tree()
        if outage == "stopped":
            database.stop()
        else:
            database.hang()
        seconds = stop_and_time(worker)
    assert worker.proc.returncode is not None, "still running:\n" + worker.output()[-2500:]
    print(f"stopped in {seconds:.1f} s")
    assert seconds < BOUND, worker.output()
    assert alive(leftovers) == [], worker.output()
    assert "going on without it" in worker.output()
    # Nothing could be written while the database was down: the job keeps its lease, and
    # the next maintenance run anywhere after it runs out re-queues it (worker_lost).
    assert Job.objects.get(pk=job.id).status == "running"
    time.sleep(3.5)  # JOB_LEASE_SECONDS of the test worker
    assert run_maintenance().requeued == 1
    row = Job.objects.get(pk=job.id)
    assert (row.status, row.error_code) == ("queued", "worker_lost")


def test_a_handler_stuck_in_c_is_killed_at_the_end_of_the_drain(
    start_worker: Any, leftovers: list[psutil.Process]
) -> None:
    worker = start_worker(stuck_kinds.__name__, JOB_DRAIN_SECONDS=str(DRAIN))
    job = create_job(kind="test.stuck_in_c", payload={})[0]
    wait_status(job.id, {"running"})
    leftovers += worker.tree()
    seconds = stop_and_time(worker, every_process=True)
    assert DRAIN <= seconds < BOUND, worker.output()
    assert alive(leftovers) == [], worker.output()
    row = Job.objects.get(pk=job.id)
    assert (row.status, row.error_code, row.attempts) == ("queued", "worker_shutdown", 0)


def test_a_dead_sentinel_leaves_no_orphan_behind(
    start_worker: Any, leftovers: list[psutil.Process]
) -> None:
    """The sentinel crashes (OOM killer): its workers, monitor and pusher lose their parent
    and would go on running jobs unsupervised; runworker notices and ends them all."""
    worker = start_worker(stuck_kinds.__name__, JOB_DRAIN_SECONDS=str(DRAIN))
    job = create_job(kind="test.stuck_in_c", payload={})[0]
    wait_status(job.id, {"running"})
    leftovers += worker.tree()
    (sentinel,) = psutil.Process(worker.proc.pid).children()
    started = time.monotonic()
    sentinel.kill()
    with suppress(Exception):
        worker.proc.wait(timeout=BOUND + 10)
    assert time.monotonic() - started < BOUND + 1, worker.output()
    assert alive(leftovers) == [], worker.output()
    assert "the django-q2 cluster died" in worker.output()


def test_a_handler_stuck_in_c_is_killed_at_its_time_limit(
    start_worker: Any, leftovers: list[psutil.Process], settings: Any
) -> None:
    """django-q2's guard replaces a worker past its task's time limit (job timeout + grace
    + 3 s) with SIGTERM, which the workers block: the stuck one must still end."""
    settings.JOB_TIMEOUT_GRACE_SECONDS = 1  # the enqueuer sets the task's time limit
    worker = start_worker(stuck_kinds.__name__)
    job = create_job(kind="test.stuck_in_c", payload={}, timeout_seconds=1)[0]
    running = wait_status(job.id, {"running"})
    stuck = psutil.Process(int(running.worker.rsplit("/", 1)[1]))
    leftovers.append(stuck)
    # The job itself times out at once (maintenance, on the database clock)...
    done = wait_status(job.id, {"timed_out"}, seconds=10)
    assert done.error_code == "timeout"
    # ...and the process running it is gone at its time limit (1 + 1 + 3 s of guard cycles).
    deadline = time.monotonic() + 8
    while alive([stuck]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive([stuck]) == [], worker.output()
    assert "killing it" in worker.output()
    # The cluster goes on with a fresh worker.
    after = create_job(kind="demo.sleep", payload={"seconds": 0})[0]
    assert wait_status(after.id, {"succeeded", "failed"}).status == "succeeded"
