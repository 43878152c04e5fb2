"""django-tasks-db: the django-tasks 0.12 backport with django-tasks-db 0.13's database
backend and two ``manage.py db_worker`` processes (its defaults: poll every 1 s when the
queue is empty), under bench/_tasks_db_settings.py.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django_tasks import task

from bench._peers import INSERT_STARTED


@task()
def noop(key: str) -> None:
    return None


@task()
def record(key: str) -> None:
    started = time.time()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(INSERT_STARTED, [key, started, os.getpid()])


def run(url: str, jobs: int, latency_jobs: int) -> dict[str, Any]:
    from importlib.metadata import version

    import psycopg
    from django.core.management import call_command

    from bench._peers import Workers, manage, scenario

    call_command("migrate", "django_tasks_database", interactive=False, verbosity=0)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE django_tasks_database_dbtaskresult")

        def count(where: str) -> int:
            return conn.execute(
                f"SELECT count(*) FROM django_tasks_database_dbtaskresult WHERE {where}"  # noqa: S608
            ).fetchone()[0]

        command = manage("db_worker", "--no-reload")
        workers = Workers([command, command], DJANGO_SETTINGS_MODULE="bench._tasks_db_settings")
        try:
            result = scenario(
                conn=conn,
                create=lambda key: noop.enqueue(key),
                create_recording=lambda key: record.enqueue(key),
                succeeded=lambda: count("status = 'SUCCESSFUL'"),
                jobs=jobs,
                latency_jobs=latency_jobs,
            )
            failed = count("status <> 'SUCCESSFUL'")
        finally:
            workers.kill()
    return {
        "system": f"django-tasks-db {version('django-tasks-db')} db_worker",
        **result,
        "not_succeeded": failed,
    }
