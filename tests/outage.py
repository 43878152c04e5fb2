"""A database a test may really stop, and a Django process that lives through it.

The suite shares one test server, which must stay up, so a test that stops PostgreSQL
gets a server of its own (an embedded one in a temporary folder, migrated once per
module, about 3 s) and runs the service in a child process (``tests/outage_child.py``)
against it. The test drives the child one JSON command per line and changes rows on a
connection of its own: another process's commit, as in production.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from controlplane.lib import embedded_db
from tests.conftest import PYTHON, REPO, subprocess_env


@dataclass
class OwnServer:
    pgdata: Path
    url: str

    def stop(self) -> tuple[float, float]:
        """Stop the server (``pg_ctl stop -m fast``, which waits until it is down); returns
        ``time.monotonic()`` (the child's clock too) from just before and just after."""
        began = time.monotonic()
        assert embedded_db.stop(self.pgdata), "the server was not running"
        return began, time.monotonic()

    def start(self) -> None:
        embedded_db.start(self.pgdata)

    def execute(self, statement: str, params: list[Any]) -> int:
        """One statement, committed on a connection of the test's own; its row count."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(statement, params).rowcount


@pytest.fixture(scope="module")
def own_server() -> Iterator[OwnServer]:
    # Not under pytest's temporary folder: as root the server runs as another user, and
    # any pytest session starting meanwhile makes that folder private to root again.
    folder = Path(tempfile.mkdtemp(prefix="controlplane-outage-"))
    pgdata = folder / "pgdata"
    url = embedded_db.ensure_running(pgdata, database="controlplane_outage")
    try:
        migrated = subprocess.run(
            [PYTHON, "manage.py", "migrate", "--verbosity", "0"],
            cwd=REPO,
            env=subprocess_env(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="controlplane.settings"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrated.returncode == 0, migrated.stderr
        yield OwnServer(pgdata, url)
    finally:
        embedded_db.stop(pgdata)
        shutil.rmtree(folder, ignore_errors=True)


class Child:
    """``python -m tests.outage_child`` against ``server``; ``do(op, ...)`` sends a command
    and returns the child's answer."""

    def __init__(self, server: OwnServer, workdir: Path, **env: str) -> None:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "tests.outage_child"],
            cwd=REPO,
            env=subprocess_env(
                DATABASE_URL=server.url,
                DJANGO_SETTINGS_MODULE="controlplane.settings",
                ERROR_SPOOL_PATH=str(workdir / "error-spool.jsonl"),
                PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),
                DB_PING_SECONDS="0.5",
                **env,
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.read() == {"ready": True}

    def read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.kill()
            _, stderr = self.process.communicate(timeout=10)
            raise AssertionError(f"the child ended:\n{stderr[-4000:]}")
        return json.loads(line)

    def do(self, op: str, **arguments: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        answer = self.read()
        assert "failed" not in answer, answer["failed"]
        return answer

    def get(self, path: str, token: str) -> Any:
        return self.do("request", method="GET", path=path, token=token)

    def post(self, path: str, token: str, body: Any) -> Any:
        return self.do("request", method="POST", path=path, token=token, body=body)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


@pytest.fixture
def child_of(own_server: OwnServer, tmp_path: Path) -> Iterator[Any]:
    """``child_of(**env)``: a child on the module's server; the server is running again
    and the child gone at the end."""
    children: list[Child] = []

    def start(**env: str) -> Child:
        children.append(Child(own_server, tmp_path, **env))
        return children[-1]

    try:
        yield start
    finally:
        for child in children:
            child.close()
        own_server.start()  # (a no-op when it runs) for the module's next test


def code(answer: dict[str, Any]) -> str | None:
    """The error code of an answer the child relayed (None: no error envelope)."""
    error = answer["body"].get("error") if isinstance(answer["body"], dict) else None
    return error.get("code") if isinstance(error, dict) else None
