"""Side connections: autocommit psycopg connections outside Django's transactions.

Error records and breaker transitions must commit on their own: a request
that rolls back must keep its error record, and a breaker failure recorded
inside someone's ``transaction.atomic()`` must neither be lost nor hold the
breaker row locked until that transaction ends. Each process and thread gets
its own connection; a connection inherited through fork is dropped, never
used or closed (its socket belongs to the parent).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from django.db import connections

from controlplane.lib import dbgate

T = TypeVar("T")

# Django-only keys in DATABASES[...]["OPTIONS"] that libpq does not understand.
_NOT_LIBPQ = {"pool", "isolation_level", "server_side_binding", "assume_role", "cursor_factory"}


def default_conninfo(
    *, application_name: str, connect_timeout: int, statement_timeout_ms: int
) -> dict[str, Any]:
    """libpq keywords for the default database (under pytest, the test database)."""
    db = connections["default"].settings_dict
    info = {
        "dbname": db["NAME"],
        "user": db["USER"] or None,
        "password": db["PASSWORD"] or None,
        "host": db["HOST"] or None,
        "port": db["PORT"] or None,
        **{k: v for k, v in db.get("OPTIONS", {}).items() if k not in _NOT_LIBPQ},
    }
    info["connect_timeout"] = connect_timeout
    info["application_name"] = application_name
    info["options"] = f"-c statement_timeout={statement_timeout_ms}"
    return {k: v for k, v in info.items() if v is not None}


class SideConnection:
    """A per-thread, per-process autocommit connection built from ``conninfo()``."""

    def __init__(self, conninfo: Callable[[], dict[str, Any]]) -> None:
        self.conninfo = conninfo
        self._local = threading.local()

    def connection(self) -> psycopg.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        info = self.conninfo()
        if conn is not None:
            if local.pid != os.getpid():
                conn = None  # inherited through fork: never touch the parent's socket
            elif conn.closed or local.info != info:
                conn.close()
                conn = None
        if conn is None:
            dbgate.check()  # fail fast while the listener knows the database is away
            conn = psycopg.connect(**info, autocommit=True)
            dbgate.track(conn)
            local.conn, local.pid, local.info = conn, os.getpid(), info
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    def run(self, work: Callable[[psycopg.Cursor], T]) -> T:
        """Run ``work(cursor)``; a stale connection (server restarted) is retried once."""
        for attempt in (1, 2):
            try:
                with self.connection().cursor() as cursor:
                    return work(cursor)
            except psycopg.OperationalError:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
