"""A replay SIGKILLed midway (a worker at Q_TIMEOUT, a deploy) loses no row and resumes
where it stopped, not from the first line."""

from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime

import pytest
from django.conf import settings

from controlplane.errors import spool, store
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.models import ErrorGroup, ErrorRecord
from controlplane.errors.recording import build_row
from tests.conftest import PYTHON, REPO, django_child_env

pytestmark = pytest.mark.django_db

ROWS = 3000
# The child SIGKILLs itself right after it records progress for the first time: midway,
# whatever the machine's load (a kill sent from here could land after the last row).
REPLAY = """
import os, signal
import django
django.setup()
from controlplane.errors import spool
from controlplane.errors.store import replay_spool

record = spool.Claimed.record

def record_then_die(self, offset):
    record(self, offset)
    os.kill(os.getpid(), signal.SIGKILL)

spool.Claimed.record = record_then_die
replay_spool()
"""


def test_a_replay_killed_midway_loses_nothing_and_resumes_where_it_stopped() -> None:
    now = datetime.now(UTC).isoformat()
    rows = [
        {**build_row(InternalServerError(technical_message=f"outage {n}")), "created_at": now}
        for n in range(ROWS)
    ]
    for row in rows:
        spool.append(row)
    size = settings.ERROR_SPOOL_PATH.stat().st_size

    child = subprocess.Popen(
        [PYTHON, "-c", REPLAY],
        cwd=REPO,
        env=django_child_env(ERROR_SPOOL_PATH=str(settings.ERROR_SPOOL_PATH)),
    )
    assert child.wait(timeout=60) == -signal.SIGKILL

    (claimed,) = spool.current().claimed()
    assert claimed.size() == size  # never rewritten: every row still on disk
    resume_at = claimed.offset()
    assert 0 < resume_at < size
    already = ErrorRecord.objects.count()
    assert 0 < already < ROWS  # killed midway indeed

    result = store.replay_spool()
    assert result.duplicates <= store.PROGRESS_EVERY_ROWS  # resumed, not from line 1
    assert result.inserted == ROWS - already
    assert result.inserted + result.duplicates == claimed_rows_after(rows, resume_at)
    assert (
        ErrorRecord.objects.filter(support_id__in=[r["support_id"] for r in rows]).count() == ROWS
    )
    (group,) = ErrorGroup.objects.all()  # one shape of message: one group, each row counted once
    assert group.count == ROWS
    assert not spool.current().claimed() and spool.backlog().bytes == 0


def claimed_rows_after(rows: list[dict], offset: int) -> int:
    """How many of ``rows`` (spooled in order) start at or after byte ``offset``."""
    position = 0
    for index, row in enumerate(rows):
        if position >= offset:
            return len(rows) - index
        position += len(spool.line(row))
    return 0
