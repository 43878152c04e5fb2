from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import psutil
import pytest
from django.db import connection

from jobs.models import Job
from tests.conftest import PYTHON, REPO, django_child_env

WORKER_SETTINGS = {
    "JOB_LEASE_SECONDS": "3",
    "JOB_HEARTBEAT_SECONDS": "0.5",
    "JOB_MAINTENANCE_SECONDS": "0.3",
    "JOB_DRAIN_SECONDS": "5",
    "JOB_RETRY_INITIAL_DELAY": "0.2",
    "JOB_RETRY_MAX_DELAY": "0.5",
    "Q_WORKERS": "2",
}


@pytest.fixture
def clean_jobs(transactional_db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM jobs_jobevent; DELETE FROM jobs_job; DELETE FROM django_q_ormq; "
            "DELETE FROM django_q_task"
        )


# runworker with extra job kinds registered first (a test-only module of handlers).
RUNWORKER_WITH = (
    "import django; django.setup(); import importlib; importlib.import_module({module!r}); "
    "from django.core.management import call_command; call_command('runworker')"
)


class WorkerProcess:
    def __init__(self, kinds_module: str | None = None, **overrides: str) -> None:
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 -- closed in stop()
        command = [PYTHON, "manage.py", "runworker"]
        if kinds_module:
            command = [PYTHON, "-c", RUNWORKER_WITH.format(module=kinds_module)]
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=django_child_env(**{**WORKER_SETTINGS, **overrides}),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_for("running (drain", 30)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait_for(self, text: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.output():
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, f"worker never said {text!r}:\n{self.output()}"
            time.sleep(0.05)

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill_all(self) -> None:
        for process in self.tree():
            with suppress(psutil.Error):
                process.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill_all()
        self.log.close()


@pytest.fixture
def start_worker(clean_jobs: None) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start(kinds_module: str | None = None, **overrides: str) -> WorkerProcess:
        worker = WorkerProcess(kinds_module, **overrides)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_status(job_id: Any, statuses: set[str], seconds: float = 20) -> Job:
    deadline = time.monotonic() + seconds
    while True:
        job = Job.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"job stayed {job.status} ({job.error_message})"
        time.sleep(0.05)


def events(job_id: Any) -> list[tuple[str, str]]:
    return list(
        Job.objects.get(pk=job_id)
        .events.order_by("created_at", "id")
        .values_list("from_status", "to_status")
    )


from tests.lookups.conftest import lookups  # noqa: E402,F401 -- shared fixture
