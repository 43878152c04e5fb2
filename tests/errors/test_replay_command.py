"""`manage.py replay_error_spool`: what waits (--status), and the replay by hand."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from controlplane.errors import spool, store
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.models import ErrorRecord
from controlplane.errors.recording import record_error

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("replay_error_spool", *args, stdout=out)
    return out.getvalue()


def test_status_shows_what_waits_and_writes_nothing(dead_database: None) -> None:
    recorded = [record_error(InternalServerError(technical_message=f"n{n}")) for n in range(3)]
    with pytest.raises(CommandError, match="still unreachable"):
        run()  # the database is still down: claimed, kept
    store.set_store(store.Store())
    status = run("--status")
    assert "3 rows waiting" in status and "in 1 files" in status
    assert "replayed up to byte 0 of" in status
    assert not ErrorRecord.objects.filter(support_id=recorded[0].support_id).exists()

    replayed = run()
    assert "3 written, 0 already present, 0 rejected, 0 corrupt lines set aside" in replayed
    assert "0 still waiting" in replayed
    assert "0 rows waiting" in run("--status") and spool.backlog().bytes == 0
