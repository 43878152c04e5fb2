"""The database is unreachable while an error happens: nothing shown is unfindable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings

from controlplane.errors import spool, store
from controlplane.errors.models import ErrorGroup, ErrorRecord
from tests.errors.helpers import assert_envelope, assert_resolves

pytestmark = pytest.mark.django_db


def _spooled_ids() -> list[str]:
    path = settings.ERROR_SPOOL_PATH
    return [json.loads(line)["support_id"] for line in path.read_text().splitlines()]


def test_error_during_an_outage_is_spooled_then_replayed_once(
    client_user: Any, support_user: Any, api_as: Any, client: Any, dead_database: None
) -> None:
    response = api_as(client_user).get("/api/v1/no-such-thing/")
    sid = assert_envelope(response, 404, "NOT_FOUND")
    assert _spooled_ids() == [sid]
    assert not ErrorRecord.objects.filter(support_id=sid).exists()

    # Even before replay, support can find it on this machine.
    detail = api_as(support_user).get(f"/api/v1/errors/{sid}/").json()
    assert detail["spooled"] is True
    assert detail["record"]["code"] == "NOT_FOUND"
    client.force_login(support_user)
    page = client.get("/admin/errors/errorrecord/", {"q": sid}, follow=True)
    assert "waiting in this server&#x27;s spool" in page.content.decode()

    store.set_store(store.Store())  # the database is back
    first = store.replay_spool()
    assert (first.inserted, first.duplicates, first.remaining) == (1, 0, 0)
    assert_resolves(sid, support_user, client)

    # Replaying the same rows again (a crash before the spool was cleared) adds nothing.
    spool.append(_row_of(sid))
    second = store.replay_spool()
    assert (second.inserted, second.duplicates) == (0, 1)
    assert ErrorRecord.objects.filter(support_id=sid).count() == 1
    assert (
        ErrorGroup.objects.get(
            fingerprint=ErrorRecord.objects.get(support_id=sid).fingerprint
        ).count
        == 1
    )


def _row_of(support_id: str) -> dict[str, Any]:
    record = ErrorRecord.objects.get(support_id=support_id)
    row = {column: getattr(record, column) for column in store.COLUMNS}
    row["created_at"] = record.created_at.isoformat()
    return json.loads(json.dumps(row, default=str))


def test_replay_keeps_rows_while_the_database_is_still_down(dead_database: None) -> None:
    from controlplane.errors.exceptions import InternalServerError
    from controlplane.errors.recording import record_error

    recorded = record_error(InternalServerError(technical_message="during outage"))
    assert recorded.saved == "spooled"
    result = store.replay_spool()
    assert (result.inserted, result.remaining) == (0, 1)
    assert spool.pending_count() == 1
    store.set_store(store.Store())
    assert store.replay_spool().inserted == 1
    assert spool.pending_count() == 0
    assert ErrorRecord.objects.filter(support_id=recorded.support_id).exists()


def test_a_write_after_recovery_drains_the_spool_by_itself(dead_database: None) -> None:
    from controlplane.errors import drain, recording
    from controlplane.errors.exceptions import InternalServerError

    spooled = recording.record_error(InternalServerError(technical_message="one"))
    store.set_store(store.Store())
    drain.written_checked_at = 0.0
    recording.record_error(InternalServerError(technical_message="two"))
    # In the background, not in the request that found the database back.
    assert drain.drainer.wait_idle(timeout=10)
    assert ErrorRecord.objects.filter(support_id=spooled.support_id).exists()
    assert spool.pending_count() == 0


def test_an_unwritable_spool_still_logs_the_whole_record(
    dead_database: None, settings: Any, tmp_path: Any, caplog: Any
) -> None:
    from controlplane.errors.exceptions import InternalServerError
    from controlplane.errors.recording import record_error

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings.ERROR_SPOOL_PATH = blocker / "spool.jsonl"  # parent is a file: OSError
    with caplog.at_level("ERROR", logger="controlplane.errors.store"):
        recorded = record_error(InternalServerError(technical_message="nowhere to go"))
    assert recorded.support_id in caplog.text
    assert "could not be stored nor spooled" in caplog.text


def test_the_spool_is_bounded_compact_from_half_full_and_logged_at_the_cap(
    dead_database: None, settings: Any, caplog: Any
) -> None:
    from controlplane.errors import spool
    from controlplane.errors.exceptions import InternalServerError
    from controlplane.errors.recording import record_error

    settings.ERROR_SPOOL_MAX_BYTES = 64 * 1024
    context = {"blob": "x" * 6000}
    saved = [
        record_error(InternalServerError(technical_message="big", context=context))
        for _ in range(100)
    ]
    kinds = [s.saved for s in saved]
    rows = [json.loads(line) for line in settings.ERROR_SPOOL_PATH.read_text().splitlines()]
    assert spool.size() <= 64 * 1024
    assert rows[0]["compact"] is False and rows[-1]["compact"] is True  # compact past half
    assert kinds[: len(rows)] == ["spooled"] * len(rows) and "logged" in kinds  # then only logged
    logged = [s.support_id for s in saved if s.saved == "logged"]
    assert all(sid in caplog.text for sid in logged)  # the log line keeps them findable
    assert "spool full" in caplog.text
