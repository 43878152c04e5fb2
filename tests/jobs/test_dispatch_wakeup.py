"""A job created while the cluster is idle starts at once: the INSERT into django-q2's queue
sends a NOTIFY that wakes the pusher, whatever its poll interval. Without the NOTIFY, the
pusher's polling still starts it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from jobs.actions import create_job
from tests.jobs.conftest import WorkerProcess, wait_status

pytestmark = pytest.mark.slow

LISTENING = "listening for new jobs"


def start_latency(job_id: Any) -> float:
    """Created -> running, by the database's clock."""
    job = wait_status(job_id, {"succeeded"}, seconds=20)
    return (job.started_at - job.created_at).total_seconds()


@pytest.fixture
def wakeup_trigger_disabled(clean_jobs: None) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_q_ormq DISABLE TRIGGER jobs_wake_pushers")
    yield
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_q_ormq ENABLE TRIGGER jobs_wake_pushers")


def test_it_starts_a_job_well_within_a_long_poll_interval(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # A 5 s poll: each job would wait 2.5 s on average for the pusher's next look, and three
    # in a row all under 1 s would be luck (1 in 125).
    worker = start_worker(Q_POLL="5")
    worker.wait_for(LISTENING, 20)
    latencies = []
    for _ in range(3):
        job, _created = create_job(kind="demo.sleep", payload={"seconds": 0})
        latencies.append(start_latency(job.id))
    assert max(latencies) < 1.0, latencies


def test_it_still_starts_jobs_by_polling_when_no_notify_comes(
    wakeup_trigger_disabled: None, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(Q_POLL="0.3")
    worker.wait_for(LISTENING, 20)
    job, _created = create_job(kind="demo.sleep", payload={"seconds": 0})
    # Nothing wakes the pusher: its next poll (0.3 s) finds the job.
    assert start_latency(job.id) < 5.0


def test_every_worker_is_woken_and_each_job_runs_once(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    first = start_worker(Q_POLL="5", Q_WORKERS="1")
    second = start_worker(Q_POLL="5", Q_WORKERS="1")
    for worker in (first, second):
        worker.wait_for(LISTENING, 20)
    ids = [create_job(kind="demo.sleep", payload={"seconds": 0.3})[0].id for _ in range(4)]
    started = time.monotonic()
    for job_id in ids:
        job = wait_status(job_id, {"succeeded"}, seconds=20)
        assert job.attempts == 1
        assert list(job.events.values_list("to_status", flat=True)) == [
            "queued",
            "running",
            "succeeded",
        ]
    workers = {row.split("/")[0] for row in _workers_of(ids)}
    assert len(workers) == 2, workers  # both clusters took jobs, none waited for a poll
    assert time.monotonic() - started < 4.0


def _workers_of(ids: list[Any]) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT message FROM jobs_jobevent WHERE job_id = ANY(%s) AND to_status = 'running'",
            [ids],
        )
        return [message.removeprefix("claimed by ") for (message,) in cursor.fetchall()]
