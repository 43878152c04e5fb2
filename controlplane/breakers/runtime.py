"""One breaker in one process: a snapshot of the shared row plus local counters.

Closed breakers are decided from the snapshot without touching the database;
the snapshot is dropped when any process changes the breaker (NOTIFY from the
trigger) and re-read after ``BREAKER_SNAPSHOT_TTL`` seconds regardless.
Failures are written at once; successes only when they matter (a pending
consecutive-failure count to reset, a failure-rate window, a half-open probe).
When PostgreSQL is unreachable the breaker runs on local counters and the
breaker's ``fail_open`` choice, and the registry reports itself degraded.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from django.conf import settings

from controlplane.breakers import sql
from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.signals import announce
from controlplane.breakers.snapshot import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    OPEN,
    Permit,
    Snapshot,
    placeholder,
    snapshot_from_row,
)
from controlplane.lib.logs import FIELDS
from controlplane.lib.metrics import BREAKER_REJECTIONS, BREAKER_TRANSITIONS

if TYPE_CHECKING:
    from controlplane.breakers.registry import Registry

logger = logging.getLogger("controlplane.breakers")


def _default_config() -> dict[str, Any]:
    return {**settings.BREAKER_DEFAULTS, "owner_id": None}


@dataclass
class BreakerRuntime:
    name: str
    registry: Registry
    config: dict[str, Any]
    snapshot: Snapshot | None = None
    last_known: Snapshot | None = None
    pending_successes: int = 0
    last_flush: float = 0.0
    local_failures: int = 0
    local_open_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- reading -------------------------------------------------------------------
    def current(self) -> Snapshot | None:
        snap = self.snapshot
        if snap is not None and time.monotonic() < snap.fresh_until:
            return snap
        return self.reload()

    def reload(self) -> Snapshot | None:
        if not self.registry.may_try_database():
            return None
        guard = self.registry.guard
        guard.listen()  # e.g. in a child forked after first use
        seen = guard.stamp(self.name)
        try:
            row = self.registry.side.run(self._load)
        except psycopg.Error as exc:
            self.registry.database_failed(exc)
            return None
        self.registry.database_ok()
        if guard.stamp(self.name) != seen:  # changed while we read: the row may be stale
            self.snapshot = None
            return snapshot_from_row(row)
        return self._adopt(row)

    def _load(self, cursor: psycopg.Cursor) -> dict[str, Any]:
        row = sql.run(cursor, sql.SNAPSHOT, {"name": self.name})
        if row is None:  # first use anywhere: create it with the settings defaults
            cursor.execute(sql.ENSURE, {**_default_config(), **self.config, "name": self.name})
            row = sql.run(cursor, sql.SNAPSHOT, {"name": self.name})
        if row is None:
            raise RuntimeError(f"breaker {self.name!r} was deleted while being created")
        return row

    def _adopt(self, row: dict[str, Any] | None) -> Snapshot | None:
        if row is None:  # our generation was stale: re-read next time
            self.snapshot = None
            return None
        snap = snapshot_from_row(row)
        self.snapshot = self.last_known = snap
        self.local_failures, self.local_open_until = 0, 0.0
        return snap

    # --- deciding ------------------------------------------------------------------
    def acquire(self) -> Permit:
        """A permit for one call, or CircuitOpenError."""
        snap = None
        for _ in range(3):  # another process may move the state between our steps
            snap = self.current()
            if snap is None:
                return self._local_permit()
            now = time.monotonic()
            if snap.override and snap.override_until is not None and now >= snap.override_until:
                self._transition(sql.EXPIRE_OVERRIDE, snap, "override_expired")
                continue
            if snap.override == DISABLED or (snap.state == CLOSED and snap.override != FORCED_OPEN):
                return Permit(snap.generation)
            if snap.override == FORCED_OPEN:
                left = None if snap.override_until is None else snap.override_until - now
                raise self._refuse(snap, left)
            if snap.state == OPEN:
                if snap.open_until is not None and now < snap.open_until:
                    raise self._refuse(snap, snap.open_until - now)
                self._transition(sql.TO_HALF_OPEN, snap, "transition")  # won or lost: re-read
                continue
            lease = self._acquire_probe(snap)
            if lease is not None:
                return Permit(snap.generation, probe=True, probe_lease=lease)
            fresh = self.reload()
            if fresh is None or (fresh.state, fresh.generation) == (HALF_OPEN, snap.generation):
                # Every probe slot is taken: no other call goes until a probe's result or
                # the end of its lease, so asking again in a second would only be refused.
                raise self._refuse(snap, self._until_slot_free(fresh))
        if snap is None:
            return self._local_permit()
        raise self._refuse(snap, 1.0)

    def allows(self) -> bool:
        """Would a call be permitted now? Takes no probe lease."""
        return self.refusal() is None

    def refusal(self) -> CircuitOpenError | None:
        """What a call now would meet: None if it would be permitted, else the error it would
        raise, with its ``retry_after`` (None: no known end, e.g. forced open without an
        expiry). Half-open with every probe slot taken refuses until the first probe's lease
        could end. Takes no probe lease and counts no rejection: callers that wait rather
        than call (jobs) ask this."""
        return self._assess()[0]

    def free_slots(self) -> int | None:
        """How many calls may start now: None for any number (closed, disabled), 0 while it
        refuses, else the free half-open probe slots (all of them once an open breaker's
        cooldown has ended: the next call turns it half-open). Takes no lease: callers that
        let waiting work through (jobs) let no more than this go at once."""
        refusal, slots = self._assess()
        return 0 if refusal is not None else slots

    def _assess(self) -> tuple[CircuitOpenError | None, int | None]:
        cached = self.snapshot
        snap = self.current()
        if snap is not None and snap is cached and self._probing(snap, time.monotonic()):
            # Taking a probe moves no generation, so no NOTIFY tells this process: read the
            # leases now. Only while probing may start (rare and short), for callers that
            # wait rather than call.
            snap = self.reload()
        now = time.monotonic()
        if snap is None:
            if self._local_allows():
                return None, None
            return CircuitOpenError(self.name, self.local_open_until - now, OPEN), 0
        if snap.override == DISABLED:
            return None, None
        probes = snap.half_open_max_probes
        if snap.override == FORCED_OPEN:
            if snap.override_until is not None and now >= snap.override_until:
                return None, probes  # the override's expiry turns it half-open
            left = None if snap.override_until is None else snap.override_until - now
            return CircuitOpenError(self.name, left, snap.effective_state), 0
        if snap.state == OPEN:
            if snap.open_until is not None and now >= snap.open_until:
                return None, probes  # the next call turns it half-open and probes
            left = None if snap.open_until is None else snap.open_until - now
            return CircuitOpenError(self.name, left, OPEN), 0
        if snap.state == HALF_OPEN:
            free = probes - snap.probes_in_flight
            if free > 0:
                return None, free
            return CircuitOpenError(self.name, self._until_slot_free(snap), HALF_OPEN), 0
        return None, None

    @staticmethod
    def _probing(snap: Snapshot, now: float) -> bool:
        """May a probe be taken, or be in flight? Then the leases decide."""
        if snap.override == DISABLED:
            return False
        if snap.override == FORCED_OPEN:
            return snap.override_until is not None and now >= snap.override_until
        cooled = snap.state == OPEN and snap.open_until is not None and now >= snap.open_until
        return snap.state == HALF_OPEN or cooled

    @staticmethod
    def _until_slot_free(snap: Snapshot | None) -> float:
        """Seconds until a probe slot could be free again: when the first live lease ends. A
        probe's result frees it sooner, and the close or reopen it causes is announced
        (NOTIFY), so a waiter told this is not stuck meanwhile."""
        if snap is None or snap.probe_slot_free_at is None:
            return 1.0  # not known (the database is away, or the lease just ended): soon
        return max(0.0, snap.probe_slot_free_at - time.monotonic())

    def _refuse(self, snap: Snapshot, retry_after: float | None) -> CircuitOpenError:
        self.registry.count("rejections", self.name)
        BREAKER_REJECTIONS.labels(self._label(snap)).inc()
        return CircuitOpenError(self.name, retry_after, snap.effective_state)

    def _label(self, snap: Snapshot) -> str:
        """This breaker in metric labels: this service's breakers by name; clients' breakers,
        which any client can create, all as "client" (a label per name would grow without
        bound)."""
        return self.name if snap.owner_id is None else "client"

    def _local_allows(self) -> bool:
        return time.monotonic() >= self.local_open_until

    def _local_permit(self) -> Permit:
        """The database is unreachable: decide from what this process knows."""
        known = self.last_known
        fail_open = known.fail_open if known else settings.BREAKER_DEFAULTS["fail_open"]
        now = time.monotonic()
        if not fail_open:
            self.registry.count("rejections", self.name)
            raise CircuitOpenError(self.name, 5.0, "unknown")
        if now < self.local_open_until:
            self.registry.count("rejections", self.name)
            raise CircuitOpenError(self.name, self.local_open_until - now, OPEN)
        if known and known.override == FORCED_OPEN:
            raise self._refuse(known, None)
        if known and known.state == OPEN and known.open_until and now < known.open_until:
            raise self._refuse(known, known.open_until - now)
        return Permit(known.generation if known else -1, local=True)

    def _acquire_probe(self, snap: Snapshot) -> datetime | None:
        try:
            row = self.registry.side.run(
                lambda c: sql.run(
                    c, sql.ACQUIRE_PROBE, {"name": self.name, "generation": snap.generation}
                )
            )
        except psycopg.Error as exc:
            self.registry.database_failed(exc)
            return None
        return row["lease"] if row else None

    # --- outcomes ------------------------------------------------------------------
    def success(self, permit: Permit) -> None:
        if permit.local:
            self.local_failures = 0
            return
        if permit.probe:
            # The permit's generation, never the current one: a slow probe from an older
            # half-open period must not close a newer one (the SQL matches no row then).
            self._transition(
                sql.PROBE_SUCCESS,
                placeholder(permit.generation),
                "transition",
                from_state=HALF_OPEN,
                lease=permit.probe_lease,
            )
            return
        snap = self.snapshot
        if snap is None or snap.generation != permit.generation or not snap.track_successes:
            return
        with self.lock:
            self.pending_successes += 1
            due = snap.consecutive_failures > 0 or time.monotonic() - self.last_flush >= 1.0
            if not due:
                return
            successes, self.pending_successes = self.pending_successes, 0
            self.last_flush = time.monotonic()
        params = {
            "name": self.name,
            "generation": snap.generation,
            "successes": successes,
            "reset_consecutive": snap.consecutive_failures > 0,
        }
        try:
            self.registry.side.run(lambda c: c.execute(sql.FLUSH_SUCCESSES, params))
        except psycopg.Error as exc:
            self.registry.database_failed(exc)
            return
        if self.snapshot is snap:
            self.snapshot = replace(snap, consecutive_failures=0)

    def report_probe(self, permit: Permit, *, ok: bool) -> bool:
        """A remote caller's probe result; it counts (True) only while the caller still holds
        the probe lease it was given."""
        new = self._transition(
            sql.PROBE_SUCCESS if ok else sql.PROBE_FAILURE,
            placeholder(permit.generation),
            "transition",
            from_state=HALF_OPEN,
            lease=permit.probe_lease,
            require_lease=True,
        )
        return new is not None

    def failure(self, permit: Permit) -> None:
        if permit.local:
            self._local_failure()
            return
        snap = self.snapshot or placeholder(permit.generation)
        statement = sql.PROBE_FAILURE if permit.probe else sql.RECORD_FAILURE
        from_state = HALF_OPEN if permit.probe else CLOSED
        if permit.generation != snap.generation:
            return  # a result from an older generation: ignored
        if self._transition(statement, snap, "transition", from_state=from_state) is None and (
            self.registry.degraded
        ):
            self._local_failure()

    def _local_failure(self) -> None:
        known = self.last_known
        threshold = (
            known.failure_threshold if known else settings.BREAKER_DEFAULTS["failure_threshold"]
        )
        cooldown = (
            known.cooldown_seconds if known else settings.BREAKER_DEFAULTS["cooldown_seconds"]
        )
        with self.lock:
            self.local_failures += 1
            if self.local_failures >= threshold:
                self.local_failures = 0
                self.local_open_until = time.monotonic() + cooldown
                logger.warning(
                    "breaker %s opened locally (database unreachable) for %.0f s",
                    self.name,
                    cooldown,
                    extra={FIELDS: {"event": "breaker_opened_locally", "breaker": self.name}},
                )

    # --- transitions ---------------------------------------------------------------
    def _transition(
        self,
        statement: str,
        snap: Snapshot,
        kind: str,
        *,
        from_state: str | None = None,
        lease: datetime | None = None,
        require_lease: bool = False,
    ) -> Snapshot | None:
        params = {
            "name": self.name,
            "generation": snap.generation,
            "lease": lease,
            "require_lease": require_lease,
            **sql.event_params(kind, from_state or snap.state),
        }
        try:
            row = self.registry.side.run(lambda c: sql.run(c, statement, params))
        except psycopg.Error as exc:
            self.registry.database_failed(exc)
            return None
        self.registry.database_ok()
        new = self._adopt(row)
        if new is not None and new.generation != snap.generation:
            self._announce(from_state or snap.state, new, kind)
        return new

    def _announce(self, from_state: str, new: Snapshot, kind: str) -> None:
        """Only the winner gets here: log once, signal once."""
        self.registry.count("transitions", self.name)
        BREAKER_TRANSITIONS.labels(self._label(new), new.state).inc()
        logger.warning(
            "breaker %s: %s -> %s (generation %s)",
            self.name,
            from_state,
            new.state,
            new.generation,
            extra={
                FIELDS: {
                    "event": "breaker_transition",
                    "breaker": self.name,
                    "from_state": from_state,
                    "to_state": new.state,
                    "generation": new.generation,
                }
            },
        )
        announce(
            name=self.name,
            from_state=from_state,
            to_state=new.state,
            generation=new.generation,
            kind=kind,
        )
