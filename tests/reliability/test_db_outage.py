"""The bounded CI version of `make drills`' db_outage: a short stop of PostgreSQL under load.

The drill stops the server, so it gets an embedded PostgreSQL of its own (the rest of
the suite shares the test server). Held slugs answer stale, unknown ones the slug-only
fallback, a mapping changed just before the stop is never served with its old UUID, and
nothing acknowledged is lost.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.lib import embedded_db
from tests.reliability.drills import db_outage
from tests.reliability.drills.stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture
def own_server() -> Iterator[Path]:
    # Not under pytest's temporary folder: as root the server runs as another user, and
    # any pytest session starting meanwhile makes that folder private to root again.
    folder = Path(tempfile.mkdtemp(prefix="controlplane-outage-drill-"))
    try:
        yield folder
    finally:
        embedded_db.stop(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)


def test_a_database_outage_serves_held_lookups_stale_and_loses_nothing(
    own_server: Path,
) -> None:
    pgdata = own_server / "pgdata"
    url = embedded_db.ensure_running(pgdata, database="controlplane_outage_drill")
    # One job worker: it must recover by itself, and no job may hold it (a second worker
    # would hide one that does).
    stack = Stack(database_url=url, workdir=own_server / "stack", web_workers=2, job_workers=1)
    try:
        stack.start()
        result = db_outage.run(
            stack,
            seconds=4.0,
            stop=lambda: embedded_db.stop(pgdata),
            start=lambda: embedded_db.start(pgdata),
            clients=2,
            settle_seconds=60.0,
        )
    finally:
        stack.stop()
    assert result.passed, "\n".join(result.failures) + f"\nfigures: {result.figures}"
    figures = result.figures
    assert figures["stale_answers_during_outage"] > 0
    assert (figures["wrong_uuids"], figures["changed_mapping_served_old_uuid"]) == (0, 0)
