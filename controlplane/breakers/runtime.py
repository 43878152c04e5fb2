"""Per-process breaker state: a snapshot of the shared row plus local counters.

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
from typing import Any

import psycopg
from django.conf import settings

from controlplane import notifications, sidedb
from controlplane.breakers import transitions as sql
from controlplane.breakers.signals import breaker_transition
from controlplane.errors.exceptions import ServiceUnavailableError, service_code_prefix
from controlplane.health.metrics import BREAKER_REJECTIONS, BREAKER_TRANSITIONS

logger = logging.getLogger("controlplane.breakers")
monotonic = time.monotonic

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
FORCED_OPEN, DISABLED = "forced_open", "disabled"


class CircuitOpenError(ServiceUnavailableError):
    """The breaker refused the call; ``retry_after`` says when to try again."""

    def __init__(self, name: str, retry_after: float | None, state: str) -> None:
        super().__init__(
            "A service we depend on is temporarily unavailable; please retry later.",
            code=f"{service_code_prefix(name)}_CIRCUIT_OPEN",
            retry_after=None if retry_after is None else max(0.0, round(retry_after, 3)),
            technical_message=f"circuit breaker {name!r} is {state}",
            metadata={"breaker": name, "state": state},
        )
        self.breaker_name = name
        self.breaker_state = state


@dataclass(frozen=True)
class Snapshot:
    state: str
    generation: int
    override: str
    fresh_until: float
    open_until: float | None  # monotonic
    override_until: float | None  # monotonic
    consecutive_failures: int
    rate_enabled: bool
    fail_open: bool
    failure_threshold: int
    cooldown_seconds: float
    half_open_max_probes: int

    @property
    def fast(self) -> bool:
        """Permit without a database round trip (plain closed, or disabled forever)."""
        return self.override_until is None and (
            (self.state == CLOSED and self.override != FORCED_OPEN) or self.override == DISABLED
        )

    @property
    def track_successes(self) -> bool:
        return self.consecutive_failures > 0 or self.rate_enabled


def snapshot_from_row(row: dict[str, Any]) -> Snapshot:
    now = monotonic()
    return Snapshot(
        state=row["state"],
        generation=row["generation"],
        override=row["override"],
        fresh_until=now + settings.BREAKER_SNAPSHOT_TTL,
        open_until=None if row["open_left"] is None else now + row["open_left"],
        override_until=None if row["override_left"] is None else now + row["override_left"],
        consecutive_failures=row["consecutive_failures"],
        rate_enabled=row["failure_rate_threshold"] is not None,
        fail_open=row["fail_open"],
        failure_threshold=row["failure_threshold"],
        cooldown_seconds=row["cooldown_seconds"],
        half_open_max_probes=row["half_open_max_probes"],
    )


@dataclass(frozen=True)
class Permit:
    generation: int
    probe: bool = False  # a half-open probe: its outcome decides the breaker
    probe_lease: datetime | None = None
    local: bool = False  # granted from local state while the database was unreachable


def _default_config() -> dict[str, Any]:
    return dict(settings.BREAKER_DEFAULTS)


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
    version: int = 0  # bumped by every invalidation, so a read racing one is not cached
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- reading -------------------------------------------------------------------
    def current(self) -> Snapshot | None:
        snap = self.snapshot
        if snap is not None and monotonic() < snap.fresh_until:
            return snap
        return self.reload()

    def reload(self) -> Snapshot | None:
        if not self.registry.may_try_database():
            return None
        notifications.listener.ensure_running()  # e.g. in a child forked after first use
        version = self.version
        try:
            row = self.registry.side.run(self._load)
        except psycopg.Error as exc:
            self.registry.database_failed(exc)
            return None
        self.registry.database_ok()
        if version != self.version:  # changed while we read: the row may already be stale
            self.snapshot = None
            return snapshot_from_row(row)
        return self._adopt(row)

    def _load(self, cursor: psycopg.Cursor) -> dict[str, Any]:
        row = sql._run(cursor, sql.SNAPSHOT, {"name": self.name})
        if row is None:  # first use anywhere: create it with the settings defaults
            cursor.execute(sql.ENSURE, {**_default_config(), **self.config, "name": self.name})
            row = sql._run(cursor, sql.SNAPSHOT, {"name": self.name})
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

    def invalidate(self) -> None:
        self.version += 1
        self.snapshot = None

    # --- deciding ------------------------------------------------------------------
    def acquire(self) -> Permit:
        """A permit for one call, or CircuitOpenError."""
        snap = None
        for _ in range(3):  # another process may move the state between our steps
            snap = self.current()
            if snap is None:
                return self._local_permit()
            now = monotonic()
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
                raise self._refuse(snap, 1.0)  # every probe slot is taken
        if snap is None:
            return self._local_permit()
        raise self._refuse(snap, 1.0)

    def allows(self) -> bool:
        """Would a call be permitted now? Takes no probe lease."""
        snap = self.current()
        now = monotonic()
        if snap is None:
            return self._local_allows()
        if snap.override == DISABLED:
            return True
        if snap.override == FORCED_OPEN:
            return snap.override_until is not None and now >= snap.override_until
        if snap.state == CLOSED:
            return True
        if snap.state == OPEN:
            return snap.open_until is not None and now >= snap.open_until
        return True  # half-open: a probe may be free

    def _refuse(self, snap: Snapshot, retry_after: float | None) -> CircuitOpenError:
        self.registry.count("rejections", self.name)
        BREAKER_REJECTIONS.labels(self.name).inc()
        state = FORCED_OPEN if snap.override == FORCED_OPEN else snap.state
        return CircuitOpenError(self.name, retry_after, state)

    def _local_allows(self) -> bool:
        return monotonic() >= self.local_open_until

    def _local_permit(self) -> Permit:
        """The database is unreachable: decide from what this process knows."""
        known = self.last_known
        fail_open = known.fail_open if known else settings.BREAKER_DEFAULTS["fail_open"]
        now = monotonic()
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
                lambda c: sql._run(
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
                replace_generation(permit.generation),
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
            due = snap.consecutive_failures > 0 or monotonic() - self.last_flush >= 1.0
            if not due:
                return
            successes, self.pending_successes = self.pending_successes, 0
            self.last_flush = monotonic()
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

    def failure(self, permit: Permit) -> None:
        if permit.local:
            self._local_failure()
            return
        snap = self.snapshot or replace_generation(permit.generation)
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
                self.local_open_until = monotonic() + cooldown
                logger.warning(
                    "breaker %s opened locally (database unreachable) for %.0f s",
                    self.name,
                    cooldown,
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
    ) -> Snapshot | None:
        params = {
            "name": self.name,
            "generation": snap.generation,
            "lease": lease,
            **sql.event_params(kind, from_state or snap.state),
        }
        try:
            row = self.registry.side.run(lambda c: sql._run(c, statement, params))
        except psycopg.Error as exc:
            self.registry.database_failed(exc)
            return None
        self.registry.database_ok()
        new = self._adopt(row)
        if new is not None and new.generation != snap.generation:
            self._announce(from_state or snap.state, new)
        return new

    def _announce(self, from_state: str, new: Snapshot) -> None:
        """Only the winner gets here: log once, signal once."""
        self.registry.count("transitions", self.name)
        BREAKER_TRANSITIONS.labels(self.name, new.state).inc()
        logger.warning(
            "breaker %s: %s -> %s (generation %s)", self.name, from_state, new.state, new.generation
        )
        breaker_transition.send(
            sender=None,
            name=self.name,
            from_state=from_state,
            to_state=new.state,
            generation=new.generation,
        )


def replace_generation(generation: int) -> Snapshot:
    """A placeholder snapshot carrying only the generation a permit was granted in."""
    return Snapshot(
        state=CLOSED,
        generation=generation,
        override="",
        fresh_until=0.0,
        open_until=None,
        override_until=None,
        consecutive_failures=0,
        rate_enabled=False,
        fail_open=True,
        failure_threshold=settings.BREAKER_DEFAULTS["failure_threshold"],
        cooldown_seconds=settings.BREAKER_DEFAULTS["cooldown_seconds"],
        half_open_max_probes=1,
    )


class Registry:
    """Every breaker runtime of this process, invalidated over NOTIFY."""

    def __init__(self) -> None:
        self.runtimes: dict[str, BreakerRuntime] = {}
        self.lock = threading.Lock()
        self.side = sidedb.SideConnection(
            lambda: sidedb.default_conninfo(
                application_name="controlplane-breakers",
                connect_timeout=settings.BREAKER_DB_CONNECT_TIMEOUT,
                statement_timeout_ms=5000,
            )
        )
        self.degraded = False
        self.degraded_since: float | None = None
        self.retry_database_at = 0.0
        self.last_error = ""
        self.counters: dict[tuple[str, str], int] = {}
        self.subscribed = False

    def get(self, name: str, config: dict[str, Any] | None = None) -> BreakerRuntime:
        runtime = self.runtimes.get(name)
        if runtime is None:
            with self.lock:
                runtime = self.runtimes.get(name)
                if runtime is None:
                    runtime = BreakerRuntime(name=name, registry=self, config=dict(config or {}))
                    self.runtimes[name] = runtime
            self.ensure_listening()
        return runtime

    def ensure_listening(self) -> None:
        if not self.subscribed:
            self.subscribed = True
            notifications.subscribe(sql.CHANNEL, self.invalidate, self.invalidate_all)
        else:
            notifications.listener.ensure_running()  # after fork, a new thread

    def invalidate(self, name: str) -> None:
        runtime = self.runtimes.get(name)
        if runtime is not None:
            runtime.invalidate()

    def invalidate_all(self) -> None:
        for runtime in list(self.runtimes.values()):
            runtime.invalidate()

    def may_try_database(self) -> bool:
        return not self.degraded or monotonic() >= self.retry_database_at

    def database_failed(self, exc: Exception) -> None:
        if not self.degraded:
            logger.error("breakers: database unreachable, deciding from local state (%s)", exc)
            self.degraded_since = monotonic()
        self.degraded = True
        self.last_error = str(exc)
        self.retry_database_at = monotonic() + 1.0
        self.count("database_errors", "")

    def database_ok(self) -> None:
        if self.degraded:
            logger.warning("breakers: database reachable again")
        self.degraded = False
        self.degraded_since = None

    def count(self, metric: str, name: str) -> None:
        key = (metric, name)
        self.counters[key] = self.counters.get(key, 0) + 1


registry = Registry()
