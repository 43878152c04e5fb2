"""Bare django-q2: ``async_task`` on the ORM broker with this project's Q_CLUSTER settings
(``manage.py qcluster``, Q_WORKERS=2): the floor under our own job system.

The project's settings store no success rows (``save_limit: -1``), so a task is finished
once its broker row is acknowledged (deleted); failures are stored and counted apart.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench._peers import INSERT_STARTED


def noop(key: str) -> None:
    return None


def record(key: str) -> None:
    started = time.time()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(INSERT_STARTED, [key, started, os.getpid()])


def run(url: str, jobs: int, latency_jobs: int) -> dict[str, Any]:
    import psycopg
    from django_q.tasks import async_task

    from bench._peers import Workers, manage, scenario

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM django_q_ormq; DELETE FROM django_q_task")
        created = 0

        def create(key: str, func: str = "bench._peer_djangoq.noop") -> None:
            nonlocal created
            async_task(func, key)
            created += 1

        def succeeded() -> int:
            queued, failed = conn.execute(
                "SELECT (SELECT count(*) FROM django_q_ormq),"
                " (SELECT count(*) FROM django_q_task WHERE NOT success)"
            ).fetchone()
            if failed:
                raise RuntimeError(f"{failed} django-q2 tasks failed")
            return created - queued

        workers = Workers([manage("qcluster")], Q_WORKERS="2")
        try:
            result = scenario(
                conn=conn,
                create=create,
                create_recording=lambda key: create(key, "bench._peer_djangoq.record"),
                succeeded=succeeded,
                jobs=jobs,
                latency_jobs=latency_jobs,
            )
        finally:
            workers.kill()
    return {"system": "django-q2 async_task (ORM broker, project Q_CLUSTER)", **result}
