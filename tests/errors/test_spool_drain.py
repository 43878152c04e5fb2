"""The spool drains itself in the background within seconds of the database returning."""

from __future__ import annotations

import time

import pytest

from controlplane.errors import drain, spool, store
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.models import ErrorRecord
from controlplane.errors.recording import record_error
from controlplane.lib.notifications import listener

pytestmark = pytest.mark.django_db


def _wait_until_stored(support_id: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if ErrorRecord.objects.filter(support_id=support_id).exists():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{support_id} not in the table after {seconds} s")


def test_the_listener_reconnecting_drains_the_spool(dead_database: None) -> None:
    assert listener.connected.is_set()  # connected before the outage: no signal pending
    recorded = record_error(InternalServerError(technical_message="during an outage"))
    assert recorded.saved == "spooled"
    assert drain.drainer.thread is None  # nothing drains while nothing says it is back

    store.set_store(store.Store())  # the database takes rows again...
    with store.get_store().side.connection().cursor() as cursor:
        # ...and, as after a restart, this process's listener must reconnect.
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'controlplane-listener' AND datname = current_database()"
        )
        assert cursor.fetchall()
    assert _wait_until_stored(recorded.support_id, seconds=10) < 5
    assert drain.drainer.wait_idle(timeout=10)
    assert spool.backlog().bytes == 0 and spool.pending_count() == 0


def test_a_write_that_succeeds_drains_a_backlog(dead_database: None) -> None:
    recorded = record_error(InternalServerError(technical_message="spooled"))
    store.set_store(store.Store())
    drain.written_checked_at = 0.0  # as if no write of this process looked in the last second
    record_error(InternalServerError(technical_message="the database is back"))
    assert _wait_until_stored(recorded.support_id, seconds=10) < 5


def test_the_drain_retries_while_the_database_still_refuses(dead_database: None) -> None:
    recorded = record_error(InternalServerError(technical_message="spooled"))
    assert drain.drainer.kick()  # e.g. the listener came back before side connections do
    time.sleep(0.5)
    assert drain.drainer.thread is not None  # still trying, with backoff
    assert not ErrorRecord.objects.filter(support_id=recorded.support_id).exists()
    store.set_store(store.Store())
    assert _wait_until_stored(recorded.support_id, seconds=10) < 6
    assert drain.drainer.wait_idle(timeout=10)
