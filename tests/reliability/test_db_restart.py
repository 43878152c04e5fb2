"""The bounded CI version of `make drills`' db_restart: one long job across a fast restart.

The drill restarts the server, so it gets an embedded PostgreSQL of its own (the
rest of the suite shares the test server).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.lib import embedded_db
from tests.reliability.drills import db_restart
from tests.reliability.drills._slow_upstream import SlowUpstream
from tests.reliability.drills.stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture
def own_server() -> Iterator[tuple[Path, str]]:
    # Not under pytest's temporary folder: as root the server runs as another user, and a
    # pytest session starting meanwhile makes that folder private to root again (pg_ctl
    # then fails with "Permission denied" mid-test).
    folder = Path(tempfile.mkdtemp(prefix="controlplane-restart-drill-"))
    pgdata = folder / "pgdata"
    url = embedded_db.ensure_running(pgdata, database="controlplane_restart_drill")
    try:
        yield pgdata, url
    finally:
        embedded_db.stop(pgdata)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_job_survives_a_fast_database_restart(
    own_server: tuple[Path, str], tmp_path: Path
) -> None:
    pgdata, url = own_server
    upstream = SlowUpstream(delay=1.0).start()
    stack = Stack(database_url=url, workdir=tmp_path / "stack", web_workers=1, job_workers=1)
    try:
        stack.start()
        result = db_restart.run(
            stack,
            upstream,
            restart=lambda: embedded_db.restart(pgdata),
            checkpointing_jobs=1,
            http_jobs=0,
            job_seconds=6.0,
        )
    finally:
        stack.stop()
        upstream.stop()
    assert result.passed, "\n".join(result.failures) + f"\nfigures: {result.figures}"
    assert result.figures["succeeded"] == 1
    assert result.figures["attempts_charged_by_restart"] == 0
