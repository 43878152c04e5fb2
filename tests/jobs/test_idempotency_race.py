"""Two creates with the same Idempotency-Key at once make one job, and both answer it."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import connection, connections, transaction

from jobs.actions import create_job
from jobs.models import Job, JobEvent


def waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # fresh activity, in a transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def test_a_twin_committed_while_the_create_waited_is_answered(
    clean_jobs: None, client_user: Any
) -> None:
    """The second create's insert waits on the first's uncommitted key, then conflicts; its
    statement began before that commit, so it cannot read the twin itself: it re-reads."""
    arguments = {"kind": "demo.sleep", "payload": {"seconds": 0}, "created_by": client_user}
    answers: list[tuple[Job, bool]] = []

    def second() -> None:
        try:
            answers.append(create_job(idempotency_key="twin", **arguments))
        finally:
            connections.close_all()

    with transaction.atomic():
        first, created = create_job(idempotency_key="twin", **arguments)
        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 10
        while not waiting_on_a_lock():
            assert thread.is_alive() and time.monotonic() < deadline, "never waited"
            time.sleep(0.01)
    thread.join(timeout=10)
    assert created and len(answers) == 1
    twin, twin_created = answers[0]
    assert (twin.id, twin_created) == (first.id, False)
    assert Job.objects.count() == 1 and JobEvent.objects.count() == 1
