"""Durable writes of error records: written, or spooled and replayed.

Records are written on a *side connection* (psycopg, autocommit), never on
the request's Django connection, so a request whose transaction rolls back
still keeps its record. One SQL statement inserts the record and bumps its
group (``ON CONFLICT (support_id) DO NOTHING`` makes it idempotent, so a
spooled record replayed twice is counted once).

If PostgreSQL cannot be reached, :func:`save` appends the row to the local spool
(``controlplane.errors.spool``); :func:`replay_spool` writes it later: a background
drain as soon as the database is back (``controlplane.errors.drain``), the django-q2
schedule each minute, or the management command.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from django.conf import settings
from django.utils import timezone
from psycopg.types.json import Jsonb

from controlplane.errors import bounds, spool
from controlplane.errors.signals import announce_group
from controlplane.lib import sidedb
from controlplane.lib.metrics import ERROR_RECORDS_NOT_SPOOLED

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
    "trace_id",
    "span_id",
    "request_id",
    "exception_type",
    "traceback",
    "fingerprint",
    "anonymous",
    "compact",
    "reported",
    "occurred_at",
)
# Columns a row spooled by an older version may lack.
_DEFAULTS = {
    "anonymous": False,
    "compact": False,
    "reported": False,
    "trace_id": "",
    "span_id": "",
    "request_id": "",
    "created_at": None,
}

INSERT_SQL = f"""
WITH rec AS (
    INSERT INTO errors_errorrecord ({", ".join(COLUMNS)}, created_at)
    VALUES ({", ".join(f"%({c})s" for c in COLUMNS)}, COALESCE(%(created_at)s, now()))
    ON CONFLICT (support_id) DO NOTHING
    RETURNING support_id, fingerprint, code, service, created_at, reported
), grp AS (
    INSERT INTO errors_errorgroup AS g
        (fingerprint, code, service, count, first_seen, last_seen, latest_support_id)
    SELECT fingerprint, code, service, 1, created_at, created_at, support_id FROM rec
    ON CONFLICT (fingerprint) DO UPDATE SET
        count = g.count + 1,
        first_seen = LEAST(g.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(g.last_seen, EXCLUDED.last_seen),
        latest_support_id = CASE WHEN EXCLUDED.last_seen >= g.last_seen
                                 THEN EXCLUDED.latest_support_id ELSE g.latest_support_id END
    RETURNING (xmax = 0) AS new_group, id, fingerprint, code, service, first_seen,
              latest_support_id
)
SELECT grp.*, rec.reported FROM grp, rec
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

        Raises psycopg.Error when the database cannot take the row. A record of this
        service's own (not a client's report) that made a new group announces it
        (``error_group_created``) once it is committed.
        """
        params = {**_DEFAULTS, **row, "context": Jsonb(row.get("context") or {})}

        def insert(cursor: psycopg.Cursor) -> tuple[Any, ...] | None:
            cursor.execute(INSERT_SQL, params)
            return cursor.fetchone()

        group = self.side.run(insert)
        if group is None:
            return False
        new_group, group_id, fingerprint, code, service, first_seen, support_id, reported = group
        # A client's report (POST /api/v1/errors/) is not news for this service's on-call:
        # any client could page ops with it, and grow the alert tables (invariant 10).
        if new_group and not reported:
            announce_group(
                group_id=group_id,
                fingerprint=fingerprint,
                code=code,
                service=service,
                first_seen=first_seen,
                support_id=support_id,
            )
        return True


_store = Store()


def get_store() -> Store:
    return _store


def set_store(store: Store) -> Store:
    """Swap the process-wide store (tests point it at a dead server); returns the old one."""
    global _store
    old, _store = _store, store
    return old


# --- Write or spool ----------------------------------------------------------------

# "logged": neither stored nor spooled (spool full or unwritable); the row is in the log.
Saved = Literal["stored", "duplicate", "spooled", "logged"]


def _spool(row: dict[str, Any], exc: Exception) -> Saved:
    """Keep the row on this machine until the database is back, within ERROR_SPOOL_MAX_BYTES:
    from half the cap rows are spooled compact; at the cap they are only logged (one JSON
    line with the support_id, and counted), so the disk cannot fill with records."""
    row = {**row, "created_at": row.get("created_at") or timezone.now().isoformat()}
    cap, used = settings.ERROR_SPOOL_MAX_BYTES, spool.size()
    if used >= cap // 2 and not row.get("compact"):
        row = bounds.compact(row)
    if used + len(spool.line(row)) > cap:
        ERROR_RECORDS_NOT_SPOOLED.inc()
        logger.error(
            "error record not spooled, spool full (%d of %d bytes): %s",
            used,
            cap,
            json.dumps(row, default=str),
        )
        return "logged"
    try:
        spool.append(row)
    except OSError:
        # The disk is full, or the spool unwritable (the failed write was cut back off).
        # Last resort: the whole row in the log, so the support_id stays findable.
        ERROR_RECORDS_NOT_SPOOLED.inc()
        logger.exception(
            "error record could not be stored nor spooled: %s", json.dumps(row, default=str)
        )
        return "logged"
    logger.warning("error record %s spooled: database unavailable (%s)", row["support_id"], exc)
    return "spooled"


def save(row: dict[str, Any]) -> Saved:
    """Write the row, or spool it if the database cannot take it.

    "duplicate": a record with this support_id was already stored (it is kept as it is).
    Spooled rows are written later by a background drain (``controlplane.errors.drain``),
    not by the request that happens to find the database back.
    """
    try:
        inserted = get_store().write(row)
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        return _spool(row, exc)
    except psycopg.Error as exc:
        # The database is up but refused this row (a value we failed to make storable):
        # keep the support_id resolvable with a row that surely fits; the log has the rest.
        logger.exception("error record %s refused; stored without its context", row["support_id"])
        bare = {**row, "context": {"unstorable_context": type(exc).__name__}, "traceback": ""}
        try:
            inserted = get_store().write(bare)
        except psycopg.Error as again:
            return _spool(bare, again)
    return "stored" if inserted else "duplicate"


# --- Replay ------------------------------------------------------------------------

# A replay records its progress this often (rows, seconds): a replay killed midway
# writes at most that many rows again (idempotent), never starts over.
PROGRESS_EVERY_ROWS = 100
PROGRESS_EVERY_SECONDS = 1.0
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)


@dataclass
class ReplayResult:
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    corrupt: int = 0
    remaining: int = 0
    busy: bool = False
    stopped: bool = False  # at a connection failure: the database is still unreachable


def replay_spool(
    store: Store | None = None,
    *,
    max_rows: int | None = None,
    files: spool.Spool | None = None,
) -> ReplayResult:
    """Write spooled rows into the table, exactly once per support_id.

    Claimed files are read from their recorded offset and deleted once replayed, never
    rewritten. Rows the database refuses for good (not a connection problem) are set
    aside as rejected, lines that are not rows as corrupt, instead of blocking the rest.
    Stops at the first connection failure (or after ``max_rows`` rows) and keeps what is
    left for the next replay. ``files``: this machine's spool unless given.
    """
    store = store or get_store()
    files = files or spool.current()
    result = ReplayResult()
    with files.replaying() as acquired:
        if not acquired:
            result.busy = True
            return result
        budget = max_rows
        for claimed in files.claim():
            if result.stopped or budget == 0:
                result.remaining += claimed.pending_rows()
                continue
            budget = _replay_file(store, files, claimed, result, budget)
    return result


def _replay_file(
    store: Store,
    files: spool.Spool,
    claimed: spool.Claimed,
    result: ReplayResult,
    budget: int | None,
) -> int | None:
    """Replay one claimed file from its recorded offset; returns the row budget left."""
    position = recorded = claimed.offset()
    recorded_at, unrecorded, finished = time.monotonic(), 0, True
    for raw, end in claimed.rows(position):
        if budget == 0:
            finished = False
            break
        try:
            _replay_line(store, files, raw, result)
        except _UNREACHABLE as exc:
            logger.warning("error spool replay stopped: database unreachable (%s)", exc)
            result.stopped, finished = True, False
            break
        position, unrecorded = end, unrecorded + 1
        budget = None if budget is None else budget - 1
        if (
            unrecorded >= PROGRESS_EVERY_ROWS
            or time.monotonic() - recorded_at > PROGRESS_EVERY_SECONDS
        ):
            claimed.record(position)
            recorded, recorded_at, unrecorded = position, time.monotonic(), 0
    if finished:
        claimed.finish()
        return budget
    if position != recorded:
        claimed.record(position)
    result.remaining += claimed.pending_rows()
    return budget


def _replay_line(store: Store, files: spool.Spool, raw: bytes, result: ReplayResult) -> None:
    row = spool.parse(raw)
    if row is None:
        if raw.strip():
            logger.error("error spool line is not a row (kept as corrupt): %r", raw[:200])
            files.keep_corrupt(raw)
            result.corrupt += 1
        return
    try:
        inserted = store.write(row)
    except _UNREACHABLE:
        raise
    except psycopg.Error as exc:
        logger.error("error spool row rejected (%s): %r", exc, raw[:200])
        files.keep_rejected(raw)
        result.rejected += 1
        return
    if inserted:
        result.inserted += 1
    else:
        result.duplicates += 1
