"""A job whose hand-off to django-q2 the database took with it is sent again as soon as a
worker's maintenance works again, not JOB_REDISPATCH_SECONDS (60 s) later.

A job committed just before PostgreSQL went away keeps the dispatch mark its transaction
set: the hand-off after the commit fails, and so does clearing the mark (the database is
what failed). Here the job is created by a process of its own (a web worker) whose gate
closes right after the commit, as its listener's does when it loses the database; the
worker's connections are then terminated, as a restart does.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from django.db import connection

from jobs.maintenance import run_maintenance
from jobs.models import Job
from tests.conftest import PYTHON, REPO, django_child_env
from tests.jobs.conftest import WorkerProcess, wait_status
from tests.jobs.test_dispatch import queued_job_ids

CREATE_WITH_THE_HAND_OFF_LOST = """
import json
import django

django.setup()
from django.db import transaction

from controlplane.lib import dbgate
from jobs.actions import create_job

with transaction.atomic():
    # Runs before the hand-off that create_job registers: the database goes away between.
    transaction.on_commit(lambda: dbgate.mark_unreachable("test: the database went away"))
    job = create_job(kind="demo.sleep", payload={"seconds": 0})[0]
print(json.dumps({"id": str(job.id)}))
"""

# The worker's connections: those opened since it started (this process's own side
# connections are older, and must serve the next test).
TERMINATE_SINCE = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_start >= %s
"""


def _create_with_the_hand_off_lost() -> Job:
    done = subprocess.run(
        [PYTHON, "-c", CREATE_WITH_THE_HAND_OFF_LOST],
        cwd=REPO,
        env=django_child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "keeps its dispatch mark" in done.stderr  # clearing the mark failed too
    job = Job.objects.get(pk=json.loads(done.stdout.strip().splitlines()[-1])["id"])
    assert job.status == "queued" and job.dispatched_at is not None  # the mark stayed
    assert queued_job_ids() == []  # and django-q2 never got the job
    return job


def _database_now() -> Any:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def test_a_worker_sends_a_job_whose_hand_off_was_lost_once_the_database_is_back(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # A job only maintenance can hand over: once it ran, the worker's maintenance thread
    # holds a connection that the restart ends.
    warm_up = Job.objects.create(kind="demo.sleep", payload={"seconds": 0})
    since = _database_now()
    worker = start_worker(Q_WORKERS="1", JOB_REDISPATCH_SECONDS="60")
    wait_status(warm_up.id, {"succeeded"})

    job = _create_with_the_hand_off_lost()
    with connection.cursor() as cursor:
        cursor.execute(TERMINATE_SINCE, [since])
        assert cursor.fetchall()
    # Well within JOB_REDISPATCH_SECONDS: the worker's first maintenance pass that works
    # again sends what was marked around the outage.
    wait_status(job.id, {"succeeded"}, seconds=10)
    assert "job maintenance failed" in worker.output()  # the worker did see the outage
    assert "job maintenance works again: re-sent" in worker.output()


def test_only_a_pass_after_an_outage_sends_a_freshly_marked_job_again(clean_jobs: None) -> None:
    job = _create_with_the_hand_off_lost()
    # An ordinary pass leaves it to JOB_REDISPATCH_SECONDS: a job waiting behind busy
    # workers is not sent again on every pass.
    assert run_maintenance().dispatched == 0
    assert run_maintenance(resend_marked_within=5.0).dispatched == 1
    assert queued_job_ids() == [str(job.id)]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_job SET dispatched_at = now() - interval '10 s'")
    # Marked before the window: handed over before the outage, not sent again.
    assert run_maintenance(resend_marked_within=5.0).dispatched == 0
