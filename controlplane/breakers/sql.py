"""Every breaker state change as one SQL statement on the database clock.

Each statement is ``UPDATE ... WHERE name = ... AND state = ... AND
generation = ...`` chained (in a CTE) to the INSERT of its BreakerEvent, so
exactly one process wins a transition, and only the winner's event exists.
A unique (breaker, generation) constraint on events backs this up. Callers
pass the generation they observed; a stale one simply matches no row.
A trigger (migration 0002) NOTIFYs every process when the generation moves.
Run a statement with :func:`run`.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

CHANNEL = "controlplane_breakers"

# What every process caches about a breaker. Durations are computed by the
# database (open_until - now()), so process clocks never matter. The probes in flight
# (live leases) and when the first of them ends are read with it, but taking a probe
# moves no generation (no NOTIFY): a cached count may be stale, so whoever needs it
# reads the row again (BreakerRuntime.refusal).
SNAPSHOT_COLUMNS = """
    b.id, b.name, b.owner_id, b.state, b.generation, b.override, b.policy, b.failure_threshold,
    b.window_seconds, b.failure_rate_threshold, b.minimum_calls, b.fail_open,
    b.consecutive_failures, b.half_open_max_probes,
    EXTRACT(EPOCH FROM b.open_until - now())::float AS open_left,
    EXTRACT(EPOCH FROM b.override_expires_at - now())::float AS override_left,
    b.cooldown_seconds, b.open_until,
    (SELECT count(*) FROM unnest(b.probe_leases) x WHERE x > now())::int AS probes_in_flight,
    EXTRACT(EPOCH FROM (SELECT min(x) FROM unnest(b.probe_leases) x WHERE x > now()) - now()
    )::float AS probe_slot_left
"""

_COOLDOWN = (
    "make_interval(secs => LEAST(b.max_cooldown_seconds, "
    "b.cooldown_seconds * power(b.cooldown_growth, {reopens})))"
)
_RATE_EXPIRED = (
    "(b.rate_window_started_at IS NULL "
    "OR b.rate_window_started_at <= now() - make_interval(secs => b.window_seconds))"
)
# Does this failure open the breaker? Every b.* below is the row *before* this failure
# (SET expressions see the old row), so "+ 1" counts the failure being recorded.
# - consecutive: this makes failure_threshold failures in a row.
# - window: failure_times holds the newest failure times, at most threshold of them
#   (RECORD_FAILURE trims it the same way). Append now(); if that makes at least
#   threshold entries, the oldest of the newest threshold ones sits at 1-based index
#   cardinality + 2 - threshold. Trip when it is younger than the window. By hand,
#   threshold 5, window 300 s, stored [t-250, t-100, t-50, t-10] at time t: appended
#   [t-250, t-100, t-50, t-10, t], index 4 + 2 - 5 = 1, t-250 > t-300: five failures
#   within 300 s, trip. Had t-310 been first: no trip, all five are kept, and a failure
#   at t+1 looks at index 5 + 2 - 5 = 2, t-100 > t+1-300: trip.
# - failure rate (when configured): within the current rate window, at least
#   minimum_calls calls so far and failures / calls at or above the threshold.
# A disabled breaker (override 'disabled') still counts failures but never trips.
_TRIP = f"""(b.override = '' AND (
    (b.policy = 'consecutive' AND b.consecutive_failures + 1 >= b.failure_threshold)
    OR (b.policy = 'window'
        AND cardinality(b.failure_times) + 1 >= b.failure_threshold
        AND (b.failure_times || now())[cardinality(b.failure_times) + 2 - b.failure_threshold]
            > now() - make_interval(secs => b.window_seconds))
    OR (b.failure_rate_threshold IS NOT NULL AND NOT {_RATE_EXPIRED}
        AND b.rate_calls + 1 >= b.minimum_calls
        AND (b.rate_failures + 1)::float / (b.rate_calls + 1) >= b.failure_rate_threshold)
))"""
_CLEAR_COUNTERS = """
    consecutive_failures = 0, failure_times = '{}', rate_window_started_at = NULL,
    rate_calls = 0, rate_failures = 0, probe_leases = '{}', probe_successes = 0
"""

_EVENT = """
, ev AS (
    INSERT INTO breakers_breakerevent
        (breaker_id, generation, kind, from_state, to_state, reason, actor, details, created_at)
    SELECT t.id, t.generation, %(kind)s, %(from_state)s, t.state, {reason}, %(actor)s,
           %(details)s, now()
    FROM t WHERE {won}
)
"""

RECORD_FAILURE = f"""
WITH t AS (
    UPDATE breakers_breaker b SET
        consecutive_failures = CASE WHEN {_TRIP} THEN 0 ELSE b.consecutive_failures + 1 END,
        failure_times = CASE WHEN {_TRIP} THEN '{{}}'
            ELSE (b.failure_times || now())[
                GREATEST(1, cardinality(b.failure_times) + 2 - b.failure_threshold):] END,
        rate_window_started_at = CASE WHEN {_RATE_EXPIRED} THEN now()
                                      ELSE b.rate_window_started_at END,
        rate_calls = CASE WHEN {_RATE_EXPIRED} THEN 1 ELSE b.rate_calls + 1 END,
        rate_failures = CASE WHEN {_RATE_EXPIRED} THEN 1 ELSE b.rate_failures + 1 END,
        total_failures = b.total_failures + 1,
        state = CASE WHEN {_TRIP} THEN 'open' ELSE b.state END,
        generation = CASE WHEN {_TRIP} THEN b.generation + 1 ELSE b.generation END,
        opened_at = CASE WHEN {_TRIP} THEN now() ELSE b.opened_at END,
        open_until = CASE WHEN {_TRIP} THEN now() + {_COOLDOWN.format(reopens="0")}
                          ELSE b.open_until END,
        reopen_count = 0,
        updated_at = now()
    WHERE b.name = %(name)s AND b.state = 'closed' AND b.generation = %(generation)s
    RETURNING {SNAPSHOT_COLUMNS}
)
{_EVENT.format(reason="'failure threshold reached (' || t.policy || ')'", won="t.state = 'open'")}
SELECT * FROM t
"""

FLUSH_SUCCESSES = f"""
UPDATE breakers_breaker b SET
    consecutive_failures = CASE WHEN %(reset_consecutive)s THEN 0 ELSE b.consecutive_failures END,
    rate_window_started_at = CASE WHEN {_RATE_EXPIRED} THEN now() ELSE b.rate_window_started_at END,
    rate_calls = CASE WHEN {_RATE_EXPIRED} THEN %(successes)s ELSE b.rate_calls + %(successes)s END,
    rate_failures = CASE WHEN {_RATE_EXPIRED} THEN 0 ELSE b.rate_failures END
WHERE b.name = %(name)s AND b.state = 'closed' AND b.generation = %(generation)s
"""

TO_HALF_OPEN = f"""
WITH t AS (
    UPDATE breakers_breaker b SET
        state = 'half_open', generation = b.generation + 1,
        probe_leases = '{{}}', probe_successes = 0, updated_at = now()
    WHERE b.name = %(name)s AND b.state = 'open' AND b.generation = %(generation)s
      AND b.override = '' AND b.open_until <= now()
    RETURNING {SNAPSHOT_COLUMNS}
)
{_EVENT.format(reason="'cooldown elapsed'", won="true")}
SELECT * FROM t
"""

ACQUIRE_PROBE = """
UPDATE breakers_breaker b SET
    probe_leases = ARRAY(SELECT x FROM unnest(b.probe_leases) x WHERE x > now())
                   || (now() + make_interval(secs => b.probe_lease_seconds))
WHERE b.name = %(name)s AND b.state = 'half_open' AND b.generation = %(generation)s
  AND b.override = ''
  AND (SELECT count(*) FROM unnest(b.probe_leases) x WHERE x > now()) < b.half_open_max_probes
RETURNING now() + make_interval(secs => b.probe_lease_seconds) AS lease
"""

_CLOSE_NOW = "(b.probe_successes + 1 >= b.half_open_successes)"
# A remote caller's probe result counts only with a lease it still holds (from /permit/);
# this process's own probes pass require_lease false (their lease may have run out while
# a slow call was in flight, and its answer still describes the upstream).
_HOLDS_PROBE = "(NOT %(require_lease)s OR %(lease)s::timestamptz = ANY(b.probe_leases))"
PROBE_SUCCESS = f"""
WITH t AS (
    UPDATE breakers_breaker b SET
        state = CASE WHEN {_CLOSE_NOW} THEN 'closed' ELSE b.state END,
        generation = CASE WHEN {_CLOSE_NOW} THEN b.generation + 1 ELSE b.generation END,
        probe_successes = CASE WHEN {_CLOSE_NOW} THEN 0 ELSE b.probe_successes + 1 END,
        probe_leases = CASE WHEN {_CLOSE_NOW} THEN '{{}}'
                            ELSE array_remove(b.probe_leases, %(lease)s::timestamptz) END,
        consecutive_failures = 0, failure_times = '{{}}', rate_window_started_at = NULL,
        rate_calls = 0, rate_failures = 0,
        reopen_count = CASE WHEN {_CLOSE_NOW} THEN 0 ELSE b.reopen_count END,
        opened_at = CASE WHEN {_CLOSE_NOW} THEN NULL ELSE b.opened_at END,
        open_until = CASE WHEN {_CLOSE_NOW} THEN NULL ELSE b.open_until END,
        updated_at = now()
    WHERE b.name = %(name)s AND b.state = 'half_open' AND b.generation = %(generation)s
      AND {_HOLDS_PROBE}
    RETURNING {SNAPSHOT_COLUMNS}
)
{_EVENT.format(reason="'probe succeeded'", won="t.state = 'closed'")}
SELECT * FROM t
"""

PROBE_FAILURE = f"""
WITH t AS (
    UPDATE breakers_breaker b SET
        state = 'open', generation = b.generation + 1, opened_at = now(),
        reopen_count = b.reopen_count + 1,
        open_until = now() + {_COOLDOWN.format(reopens="b.reopen_count + 1")},
        probe_leases = '{{}}', probe_successes = 0, total_failures = b.total_failures + 1,
        updated_at = now()
    WHERE b.name = %(name)s AND b.state = 'half_open' AND b.generation = %(generation)s
      AND {_HOLDS_PROBE}
    RETURNING {SNAPSHOT_COLUMNS}
)
{_EVENT.format(reason="'probe failed'", won="true")}
SELECT * FROM t
"""

# Operator overrides win whatever the generation; the old state is read under the row lock.
_OVERRIDE = """
WITH old AS (
    SELECT id, state FROM breakers_breaker WHERE name = %(name)s FOR UPDATE
), t AS (
    UPDATE breakers_breaker b SET {assignments},
        generation = b.generation + 1,
        override_by = %(actor)s, override_reason = %(reason)s, override_at = now(),
        override_expires_at = now() + make_interval(secs => %(expires_in)s::float),
        updated_at = now()
    FROM old WHERE b.id = old.id
    RETURNING {columns}, old.state AS from_state
)
, ev AS (
    INSERT INTO breakers_breakerevent
        (breaker_id, generation, kind, from_state, to_state, reason, actor, details, created_at)
    SELECT t.id, t.generation, %(kind)s, t.from_state, t.state, %(reason)s, %(actor)s,
           %(details)s, now()
    FROM t
)
SELECT * FROM t
"""
RESET = _OVERRIDE.format(
    assignments=f"state = 'closed', override = '', opened_at = NULL, open_until = NULL, "
    f"reopen_count = 0, {_CLEAR_COUNTERS}",
    columns=SNAPSHOT_COLUMNS,
)
FORCE_OPEN = _OVERRIDE.format(
    assignments="state = 'open', override = 'forced_open', opened_at = now(), "
    "open_until = now() + make_interval(secs => %(expires_in)s::float), "
    "probe_leases = '{}', probe_successes = 0",
    columns=SNAPSHOT_COLUMNS,
)
DISABLE = _OVERRIDE.format(
    assignments=f"state = 'closed', override = 'disabled', opened_at = NULL, open_until = NULL, "
    f"{_CLEAR_COUNTERS}",
    columns=SNAPSHOT_COLUMNS,
)

EXPIRE_OVERRIDE = f"""
WITH t AS (
    UPDATE breakers_breaker b SET
        state = CASE WHEN b.override = 'forced_open' THEN 'half_open' ELSE b.state END,
        override = '', generation = b.generation + 1,
        probe_leases = '{{}}', probe_successes = 0, updated_at = now()
    WHERE b.name = %(name)s AND b.generation = %(generation)s AND b.override <> ''
      AND b.override_expires_at <= now()
    RETURNING {SNAPSHOT_COLUMNS}
)
{_EVENT.format(reason="'override expired'", won="true")}
SELECT * FROM t
"""

SNAPSHOT = f"SELECT {SNAPSHOT_COLUMNS} FROM breakers_breaker b WHERE b.name = %(name)s"

_NEW_BREAKER = """
INSERT INTO breakers_breaker (
    name, owner_id, state, generation, policy, failure_threshold, window_seconds,
    failure_rate_threshold, minimum_calls, cooldown_seconds, cooldown_growth,
    max_cooldown_seconds, half_open_max_probes, half_open_successes, probe_lease_seconds,
    fail_open, consecutive_failures, failure_times, rate_calls, rate_failures, total_failures,
    reopen_count, probe_leases, probe_successes, override, override_by, override_reason,
    created_at, updated_at)
SELECT
    %(name)s, %(owner_id)s, 'closed', 0, %(policy)s, %(failure_threshold)s, %(window_seconds)s,
    %(failure_rate_threshold)s, %(minimum_calls)s, %(cooldown_seconds)s, %(cooldown_growth)s,
    %(max_cooldown_seconds)s, %(half_open_max_probes)s, %(half_open_successes)s,
    %(probe_lease_seconds)s, %(fail_open)s, 0, '{{}}', 0, 0, 0, 0, '{{}}', 0, '', '', '',
    now(), now()
{condition}
ON CONFLICT (name) DO NOTHING
"""
# First use by this service's code (no owner).
ENSURE = _NEW_BREAKER.format(condition="")
# A client's new breaker, while it owns fewer than %(cap)s (run under LOCK_OWNER, so two
# creations by one client cannot both pass the count).
CREATE_OWNED = (
    _NEW_BREAKER.format(
        condition="WHERE (SELECT count(*) FROM breakers_breaker WHERE owner_id = %(owner_id)s)"
        " < %(cap)s"
    )
    + "RETURNING id"
)
LOCK_OWNER = "SELECT pg_advisory_xact_lock(hashtext('breakers.owner'), %(owner_id)s)"


def run(cursor: psycopg.Cursor, statement: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Execute one statement; the breaker row as it left it, or None if it matched nothing
    (the generation the caller saw is stale, or the row is not in the expected state)."""
    cursor.row_factory = dict_row
    cursor.execute(statement, params)
    return cursor.fetchone()


def event_params(
    kind: str, from_state: str, actor: str = "", details: Any = None
) -> dict[str, Any]:
    """The BreakerEvent columns a statement writes when it wins."""
    return {"kind": kind, "from_state": from_state, "actor": actor, "details": Jsonb(details or {})}
