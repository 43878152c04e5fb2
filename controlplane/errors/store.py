"""Durable writes of error records.

Records are written on a *side connection* (psycopg, autocommit), never on
the request's Django connection, so a request whose transaction rolls back
still keeps its record. One SQL statement inserts the record and bumps its
group (``ON CONFLICT (support_id) DO NOTHING`` makes it idempotent, so a
spooled record replayed twice is counted once).

If PostgreSQL cannot be reached, the row is appended to a local JSON-lines
spool file and replayed later (management command, django-q2 schedule, and
opportunistically by the process itself once writes succeed again).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from psycopg.types.json import Jsonb

from controlplane import sidedb

logger = logging.getLogger(__name__)

COLUMNS = (
    "support_id",
    "code",
    "type",
    "http_status",
    "user_message",
    "technical_message",
    "context",
    "service",
    "request_method",
    "request_path",
    "user_id",
    "username",
    "api_client",
    "job_id",
    "breaker_name",
    "breaker_state",
    "exception_type",
    "traceback",
    "fingerprint",
    "occurred_at",
)

INSERT_SQL = f"""
WITH rec AS (
    INSERT INTO errors_errorrecord ({", ".join(COLUMNS)}, created_at)
    VALUES ({", ".join(f"%({c})s" for c in COLUMNS)}, COALESCE(%(created_at)s, now()))
    ON CONFLICT (support_id) DO NOTHING
    RETURNING support_id, fingerprint, code, service, created_at
)
INSERT INTO errors_errorgroup AS g
    (fingerprint, code, service, count, first_seen, last_seen, latest_support_id)
SELECT fingerprint, code, service, 1, created_at, created_at, support_id FROM rec
ON CONFLICT (fingerprint) DO UPDATE SET
    count = g.count + 1,
    first_seen = LEAST(g.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(g.last_seen, EXCLUDED.last_seen),
    latest_support_id = CASE WHEN EXCLUDED.last_seen >= g.last_seen
                             THEN EXCLUDED.latest_support_id ELSE g.latest_support_id END
"""  # noqa: S608 -- column names are constants above, values are parameters


def default_conninfo() -> dict[str, Any]:
    return sidedb.default_conninfo(
        application_name="controlplane-errors",
        connect_timeout=settings.ERROR_DB_CONNECT_TIMEOUT,
        statement_timeout_ms=settings.ERROR_DB_STATEMENT_TIMEOUT_MS,
    )


class Store:
    """Where error rows are written: the default database, or ``conninfo`` if given."""

    def __init__(self, conninfo: dict[str, Any] | None = None) -> None:
        self.side = sidedb.SideConnection(
            (lambda: conninfo) if conninfo is not None else default_conninfo
        )

    def write(self, row: dict[str, Any]) -> bool:
        """Insert the record and count it in its group. False if it was already there.

        Raises psycopg.Error when the database cannot take the row.
        """
        params = {**row, "context": Jsonb(row.get("context") or {})}
        params.setdefault("created_at", None)

        def insert(cursor: psycopg.Cursor) -> bool:
            cursor.execute(INSERT_SQL, params)
            return cursor.rowcount == 1

        return self.side.run(insert)


_store = Store()


def get_store() -> Store:
    return _store


def set_store(store: Store) -> Store:
    """Swap the process-wide store (tests point it at a dead server); returns the old one."""
    global _store
    old, _store = _store, store
    return old


# --- Spool ------------------------------------------------------------------------


def spool_path() -> Path:
    return Path(settings.ERROR_SPOOL_PATH)


@contextmanager
def _locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _append_lock(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def spool_row(row: dict[str, Any]) -> None:
    """Append one row durably (fsync) to the local spool."""
    path = spool_path()
    line = json.dumps(row, default=str, ensure_ascii=False) + "\n"
    with _locked(_append_lock(path)), open(path, "a", encoding="utf-8") as spool:
        spool.write(line)
        spool.flush()
        os.fsync(spool.fileno())


def _claimed_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".*.replaying"))


def pending_count() -> int:
    """Rows waiting in this machine's spool (for health and the admin)."""
    path = spool_path()
    files = [path, *_claimed_files(path)] if path.parent.exists() else []
    total = 0
    for file in files:
        try:
            with open(file, "rb") as handle:
                total += sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            continue
    return total


def find_spooled(support_id: str) -> dict[str, Any] | None:
    """A record still waiting in this machine's spool, if any."""
    path = spool_path()
    for file in [path, *_claimed_files(path)] if path.parent.exists() else []:
        try:
            with open(file, encoding="utf-8") as handle:
                for line in handle:
                    if support_id in line:
                        row = json.loads(line)
                        if row.get("support_id") == support_id:
                            return row
        except FileNotFoundError:
            continue
    return None


@dataclass
class ReplayResult:
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    remaining: int = 0
    busy: bool = False


def replay_spool(store: Store | None = None, *, max_rows: int | None = None) -> ReplayResult:
    """Write spooled rows into the table, exactly once per support_id.

    The live spool is renamed to a claimed file under the writers' lock, so
    appends continue into a fresh file. Rows the database refuses for good
    (not a connection problem) go to ``<spool>.rejected`` instead of blocking
    the rest. Stops at the first connection failure and keeps what is left.
    """
    store = store or get_store()
    path = spool_path()
    result = ReplayResult()
    with _locked(path.with_name(path.name + ".replay.lock"), blocking=False) as acquired:
        if not acquired:
            result.busy = True
            return result
        with _locked(_append_lock(path)):
            if path.exists() and path.stat().st_size:
                path.rename(path.with_name(f"{path.name}.{time.time_ns()}.replaying"))
        budget = max_rows
        for claimed in _claimed_files(path):
            lines = [line for line in claimed.read_text(encoding="utf-8").splitlines() if line]
            done = 0
            try:
                for line in lines:
                    if budget is not None and budget <= 0:
                        break
                    _replay_line(store, line, result)
                    done += 1
                    if budget is not None:
                        budget -= 1
            except psycopg.OperationalError as exc:
                logger.warning("error spool replay stopped: database unreachable (%s)", exc)
            left = lines[done:]
            if left:
                claimed.write_text("\n".join(left) + "\n", encoding="utf-8")
                result.remaining += len(left)
            else:
                claimed.unlink()
    return result


def _replay_line(store: Store, line: str, result: ReplayResult) -> None:
    try:
        row = json.loads(line)
        inserted = store.write(row)
    except psycopg.OperationalError:
        raise
    except (ValueError, psycopg.Error) as exc:
        logger.error("error spool row rejected (%s): %s", exc, line[:200])
        rejected = spool_path().with_name(spool_path().name + ".rejected")
        with open(rejected, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        result.rejected += 1
        return
    if inserted:
        result.inserted += 1
    else:
        result.duplicates += 1
