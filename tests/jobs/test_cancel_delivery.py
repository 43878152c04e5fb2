"""A cancel reaches a running job at once: the UPDATE that requests it sends a NOTIFY, and
the worker process running the job makes its next checkpoint (or its ``ctx.sleep``) ask the
database now, not after JOB_CHECKPOINT_POLL_SECONDS. Without the NOTIFY, the checkpoint's
own polling still lands the cancel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from jobs.actions import cancel_job, create_job
from jobs.models import Job
from tests.jobs import wakeup_kinds  # noqa: F401 -- registers test.checkpoint_loop here too
from tests.jobs.conftest import WorkerProcess, events, wait_status

pytestmark = pytest.mark.slow

KINDS = "tests.jobs.wakeup_kinds"
LISTENING = "listening for cancel requests"
# Neither the checkpoint nor the heartbeat asks the database about the job for 10 s: a
# cancel that lands within 1 s was delivered.
SLOW_POLLS = {
    "JOB_CHECKPOINT_POLL_SECONDS": "10",
    "JOB_HEARTBEAT_SECONDS": "10",
    "JOB_LEASE_SECONDS": "30",
    "Q_WORKERS": "1",
}


def cancel_latency(job_id: Any) -> float:
    """Cancel requested -> cancelled, by the database's clock."""
    cancel_job(job_id=job_id)
    job = wait_status(job_id, {"cancelled", "succeeded", "failed"}, seconds=30)
    assert job.status == "cancelled" and job.result is None
    assert events(job_id)[-2:] == [("running", "running"), ("running", "cancelled")]
    return (job.finished_at - job.cancel_requested_at).total_seconds()


def running_job(kind: str) -> Job:
    job, _created = create_job(kind=kind, payload={"seconds": 30})
    return wait_status(job.id, {"running"})


@pytest.fixture
def interrupt_trigger_disabled(clean_jobs: None) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE jobs_job DISABLE TRIGGER jobs_interrupt_running")
    yield
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE jobs_job ENABLE TRIGGER jobs_interrupt_running")


@pytest.mark.parametrize("kind", ["test.checkpoint_loop", "demo.sleep"])
def test_it_delivers_a_cancel_well_within_the_checkpoint_poll(
    start_worker: Callable[..., WorkerProcess], kind: str
) -> None:
    # test.checkpoint_loop checkpoints every 20 ms; demo.sleep waits in ctx.sleep(0.1).
    worker = start_worker(KINDS, **SLOW_POLLS)
    worker.wait_for(LISTENING, 20)
    # The last poll was at the claim: three cancels at random points of the 10 s would all
    # land within 1 s by luck once in a thousand.
    latencies = [cancel_latency(running_job(kind).id) for _ in range(3)]
    assert max(latencies) < 1.0, latencies


def test_it_still_cancels_by_polling_when_no_notify_comes(
    interrupt_trigger_disabled: None, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(KINDS, **{**SLOW_POLLS, "JOB_CHECKPOINT_POLL_SECONDS": "0.3"})
    worker.wait_for(LISTENING, 20)
    job = running_job("test.checkpoint_loop")
    # Nothing tells the worker: its checkpoint asks the database within 0.3 s.
    assert cancel_latency(job.id) < 5.0


def test_a_shutdown_reaches_running_jobs_without_a_poll(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(KINDS, **SLOW_POLLS)
    worker.wait_for(LISTENING, 20)
    job = running_job("test.checkpoint_loop")
    worker.proc.terminate()  # runworker drains: REQUEST_SHUTDOWN, then waits for the job
    # Its checkpoint stops it long before the 10 s poll, or the 5 s drain's kill.
    stopped = wait_status(job.id, {"queued"}, seconds=3)
    assert stopped.error_code == "worker_shutdown"
    assert events(job.id)[-1] == ("running", "queued")
    worker.proc.wait(timeout=20)
