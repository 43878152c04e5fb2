"""A write the disk stops short, or a line torn by a crash, never costs another row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from controlplane.errors import spool, store
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.models import ErrorRecord
from controlplane.errors.recording import record_error
from tests.conftest import run_with_dead_database

pytestmark = pytest.mark.django_db

FULL_DISK = """
import json, resource
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.recording import record_error

# No file of this process may grow past FILE_LIMIT bytes: as on a full disk, a write
# stops short, then fails with EFBIG (Python ignores SIGXFSZ).
resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
error = lambda n: InternalServerError(technical_message=f"disk full {n}", context={"b": "x" * 5000})
print(json.dumps([[r.support_id, r.saved] for r in map(record_error, map(error, range(30)))]))
"""


def test_a_full_disk_leaves_whole_rows_only_and_logs_the_rest(tmp_path: Path) -> None:
    path, limit = tmp_path / "full-spool.jsonl", 64 * 1024
    answers, log = run_with_dead_database(
        FULL_DISK.replace("FILE_LIMIT", str(limit)), ERROR_SPOOL_PATH=str(path), ENVIRONMENT="test"
    )
    spooled = [sid for sid, saved in answers if saved == "spooled"]
    logged = [sid for sid, saved in answers if saved == "logged"]
    assert spooled and logged and len(spooled) + len(logged) == 30
    assert all(sid in log for sid in logged)  # the last resort: the whole row in the log
    data = path.read_bytes()
    assert data.endswith(b"\n") and len(data) <= limit  # the short write was cut back off
    assert [spool.parse(line)["support_id"] for line in data.splitlines()] == spooled

    # Room again: the next rows are whole, and every acknowledged row is replayed.
    settings.ERROR_SPOOL_PATH = path
    spool.append({**spool.parse(data.splitlines()[0]), "support_id": logged[0]})
    result = store.replay_spool()
    assert (result.inserted, result.corrupt, result.rejected) == (len(spooled) + 1, 0, 0)
    assert (
        ErrorRecord.objects.filter(support_id__in=[*spooled, logged[0]]).count() == len(spooled) + 1
    )


def test_a_torn_line_is_kept_aside_and_never_swallows_the_next_row(
    dead_database: None, caplog: Any
) -> None:
    first = record_error(InternalServerError(technical_message="before the crash"))
    torn = json.dumps({"support_id": "0badc0de-torn", "code": "HALF"}).encode()[:25]
    with open(settings.ERROR_SPOOL_PATH, "ab") as handle:
        handle.write(torn)  # what a writer killed in the middle of its write leaves
    second = record_error(InternalServerError(technical_message="after the crash"))
    assert second.saved == "spooled"

    # Lookups skip the torn line (the API and the admin answered 500 on it).
    assert spool.find(second.support_id)["support_id"] == second.support_id
    assert spool.find("0badc0de-torn") is None

    store.set_store(store.Store())
    result = store.replay_spool()
    assert (result.inserted, result.corrupt) == (2, 1)
    assert (
        ErrorRecord.objects.filter(support_id__in=[first.support_id, second.support_id]).count()
        == 2
    )
    corrupt = settings.ERROR_SPOOL_PATH.with_name(settings.ERROR_SPOOL_PATH.name + ".corrupt")
    assert corrupt.read_bytes() == torn + b"\n"  # kept for a human, out of the replay's way
    assert spool.backlog().bytes == 0
