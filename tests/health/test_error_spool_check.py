"""Health's error-spool figure: what waits, from file sizes, never by reading the rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from controlplane.errors import spool, store
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.recording import record_error
from controlplane.health import checks

pytestmark = pytest.mark.django_db


def spool_check() -> dict[str, Any]:
    response = APIClient().get("/api/v1/health/")
    return response.json()["checks"]["error_spool"]


def test_the_backlog_follows_the_spool_as_it_is_replayed(dead_database: None) -> None:
    assert spool_check()["status"] == "healthy" and spool_check()["backlog_bytes"] == 0
    for n in range(3):
        record_error(InternalServerError(technical_message=f"outage {n}"))
    size = settings.ERROR_SPOOL_PATH.stat().st_size
    check = spool_check()
    assert check["status"] == "degraded"
    assert (check["backlog_bytes"], check["backlog_files"], check["disk_bytes"]) == (size, 1, size)
    assert check["max_bytes"] == settings.ERROR_SPOOL_MAX_BYTES

    store.set_store(store.Store())
    assert store.replay_spool(max_rows=1).remaining == 2
    (claimed,) = spool.current().claimed()
    check = spool_check()
    assert check["backlog_bytes"] == size - claimed.offset() > 0  # the two rows not replayed
    assert check["disk_bytes"] == size  # the claimed file is kept whole until replayed

    assert store.replay_spool().inserted == 2
    check = spool_check()
    assert (check["status"], check["backlog_bytes"], check["disk_bytes"]) == ("healthy", 0, 0)


def _bytes_read_by_this_thread() -> int:
    io = Path("/proc/thread-self/io").read_text()
    return int(io.split("rchar:", 1)[1].split()[0])


def test_health_reads_no_rows(dead_database: None) -> None:
    # The endpoint is unauthenticated: answering it must not cost a read of the spool.
    for n in range(200):
        spool.append({"support_id": f"00000000-0000-4000-8000-{n:012d}", "pad": "x" * 10_000})
    store.set_store(store.Store())
    assert store.replay_spool(max_rows=0).remaining == 200  # now a claimed file
    for n in range(100):
        spool.append({"support_id": f"00000000-0000-4000-9000-{n:012d}", "pad": "x" * 10_000})
    before = _bytes_read_by_this_thread()
    check = checks.error_spool()
    read = _bytes_read_by_this_thread() - before
    assert check["backlog_bytes"] > 3_000_000 and check["backlog_files"] == 2
    assert read < 16 * 1024  # the progress offsets and /proc itself, not 3 MB of rows


def test_the_dashboard_says_how_much_waits(dead_database: None, ops_user: Any, client: Any) -> None:
    record_error(InternalServerError(technical_message="outage"))
    waiting = settings.ERROR_SPOOL_PATH.stat().st_size
    client.force_login(ops_user)
    page = client.get("/admin/dashboard/").content.decode()
    assert f"{waiting:,} bytes of error records waiting in the local spool" in page
