"""Procrastinate 3.10 with its psycopg connector: LISTEN/NOTIFY dispatch, two worker
processes (``procrastinate worker --concurrency 1`` each), its tables in a PostgreSQL
schema of their own (``procrastinate``) in the bench database.

Driver and workers find the bench database in DATABASE_URL (bench/_peer.py sets it).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import procrastinate
import psycopg

from bench._peers import INSERT_STARTED

SCHEMA = "procrastinate"
OPTIONS = f"-c search_path={SCHEMA}"

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=os.environ.get("DATABASE_URL", ""), kwargs={"options": OPTIONS}
    )
)
_local = threading.local()  # sync tasks run in worker threads


@app.task(name="noop")
def noop(key: str) -> None:
    return None


@app.task(name="record")
def record(key: str) -> None:
    started = time.time()
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    conn.execute(INSERT_STARTED, [key, started, os.getpid()])


def prepare(conn: psycopg.Connection) -> None:
    """Its schema on first use; empty job tables on every run."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", [f"{SCHEMA}.procrastinate_jobs"]
    ).fetchone()[0]
    if exists:
        conn.execute(f"TRUNCATE {SCHEMA}.procrastinate_jobs CASCADE")
    else:
        app.schema_manager.apply_schema()


def run(url: str, jobs: int, latency_jobs: int) -> dict[str, Any]:
    from bench._peers import Workers, scenario

    command = [
        sys.executable,
        "-m",
        "procrastinate",
        "--app=bench._peer_procrastinate.app",
        "worker",
        "--concurrency=1",
    ]
    with psycopg.connect(url, autocommit=True) as conn, app.open():
        prepare(conn)

        def count(where: str) -> int:
            query = f"SELECT count(*) FROM procrastinate.procrastinate_jobs WHERE {where}"  # noqa: S608
            return conn.execute(query).fetchone()[0]

        workers = Workers([command, command])
        try:
            result = scenario(
                conn=conn,
                create=lambda key: noop.defer(key=key),
                create_recording=lambda key: record.defer(key=key),
                succeeded=lambda: count("status = 'succeeded'"),
                jobs=jobs,
                latency_jobs=latency_jobs,
            )
            failed = count("status <> 'succeeded'")
        finally:
            workers.kill()
    return {
        "system": f"procrastinate {procrastinate.__version__}",
        **result,
        "not_succeeded": failed,
    }
