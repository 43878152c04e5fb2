"""The retry budget: per upstream, retries may not exceed a share of first attempts.

    retries in the window <= RETRY_BUDGET_RATIO x first attempts + RETRY_BUDGET_MIN_PER_WINDOW

counted over every web and worker process. A RetryPolicy given a budget (every
ServiceClient gives its upstream's) counts each first attempt that went out (one the
breaker refused never reached the upstream and earns nothing) and asks before each retry;
a refused retry raises ``RetryBudgetExhaustedError`` (RETRY_BUDGET_EXHAUSTED, 503,
retryable later) carrying the failure it did not retry. The first attempt is never refused
here: stopping calls altogether is the breaker's job.

Counting without a round trip per call. Each process counts in memory and, at most every
RETRY_BUDGET_SYNC_SECONDS or after RETRY_BUDGET_SYNC_CALLS counted attempts, runs ONE
statement (``SYNC``) that adds its unsynced counts to the current bucket (database clock)
and returns the window's totals over every process. Between syncs it decides from those
totals plus its own unsynced counts. Counts that no later call comes to sync (the process
went quiet) are synced by a thread of the process (``budget_sharing``) within about two
sync intervals. The window is a ring of ``SLOTS`` buckets per upstream
(``RetryBudgetBucket``), so it slides in steps of window / SLOTS and the table never holds
more than upstreams x SLOTS rows.

Worst-case overshoot. A process cannot see what the others did since its last sync, so
with P processes the retries spent in a window may exceed the budget by what the other
P - 1 processes spent within one sync interval: at most (P - 1) x q, q being the retries
one process makes per RETRY_BUDGET_SYNC_SECONDS (and never more than the allowance it saw
left). E.g. 8 processes each retrying at most 5 times a second, syncing every second: the
budget may be exceeded by up to 35 retries while they race for the last of it.

While the database is unreachable (``controlplane.lib.dbgate`` says so, or a sync failed)
a process decides from its own counts over the window (so the fleet's bound becomes
P x budget for that time), tries the database again at most once a second, never waits
for it and never raises because of it. (A sync already in flight when the network goes
dark waits until the listener notices, about a second, and cuts its socket; only the
thread that syncs waits: the others decide from what is known meanwhile.) Counts it could
not sync are added once the database is back, unless they are older than the window.

The lookups' database retries do not take part: the database is not an upstream, and
those retries are bounded by LOOKUP_DB_RETRIES and the database gate.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings

from controlplane.breakers.registry import registry as breaker_registry
from controlplane.errors.exceptions import ServiceUnavailableError
from controlplane.lib import dbgate, sidedb
from controlplane.lib.metrics import RETRY_BUDGET_REFUSALS
from controlplane.resilience.budget_sharing import IdleSharing
from controlplane.resilience.budget_sql import SYNC

logger = logging.getLogger("controlplane.retry")

SLOTS = 12  # buckets per window: the window slides in steps of window / SLOTS
DATABASE_RETRY_SECONDS = 1.0  # after a failed sync, decide locally this long before trying again


@dataclass(frozen=True)
class Counts:
    first_attempts: int = 0
    retries: int = 0
    refused: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.first_attempts + other.first_attempts,
            self.retries + other.retries,
            self.refused + other.refused,
        )

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.first_attempts - other.first_attempts,
            self.retries - other.retries,
            self.refused - other.refused,
        )

    @property
    def events(self) -> int:
        return self.first_attempts + self.retries + self.refused


class RetryBudgetExhaustedError(ServiceUnavailableError):
    """A retry the upstream's budget refused; the failure that was not retried is
    ``original`` (and in the technical message)."""

    code = "RETRY_BUDGET_EXHAUSTED"
    default_message = (
        "A service we depend on is failing and is not being retried for now; please retry later."
    )

    def __init__(
        self,
        *,
        upstream: str,
        failure: BaseException,
        totals: Counts,
        allowed: float,
        window_seconds: float,
        shared: bool,
        retry_after: float,
    ) -> None:
        super().__init__(
            retry_after=retry_after,
            technical_message=(
                f"retry budget of {upstream!r} exhausted: {totals.retries} retries for"
                f" {totals.first_attempts} first attempts in the last {window_seconds:g} s"
                f" (at most {allowed:.1f}); not retried: {type(failure).__name__}: {failure}"
            ),
            context={
                "retry_budget": {
                    "upstream": upstream,
                    "first_attempts": totals.first_attempts,
                    "retries": totals.retries,
                    "refused": totals.refused,
                    "allowed_retries": round(allowed, 2),
                    "window_seconds": window_seconds,
                    # False: the database was unreachable, this process decided alone
                    "shared": shared,
                }
            },
            metadata={"service": upstream},
            original=failure,
        )
        self.upstream = upstream


class RetryBudget:
    """One upstream's budget in this process: unsynced counts, the last shared totals, and
    this process's own counts per bucket (what it decides from while the database is away).
    Thread-safe; a sync never makes another thread wait."""

    def __init__(
        self,
        upstream: str,
        *,
        ratio: float,
        floor: int,
        window_seconds: float,
        sync_seconds: float,
        sync_calls: int,
        side: sidedb.SideConnection | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.ratio = ratio
        self.floor = floor
        self.window_seconds = window_seconds
        self.width = window_seconds / SLOTS
        self.sync_seconds = sync_seconds
        self.sync_calls = sync_calls
        self._side = side
        self.clock = clock
        self.forget()
        _every_budget.add(self)

    @classmethod
    def from_settings(cls, upstream: str, **overrides: Any) -> RetryBudget:
        options: dict[str, Any] = {
            "ratio": settings.RETRY_BUDGET_RATIO,
            "floor": settings.RETRY_BUDGET_MIN_PER_WINDOW,
            "window_seconds": settings.RETRY_BUDGET_WINDOW_SECONDS,
            "sync_seconds": settings.RETRY_BUDGET_SYNC_SECONDS,
            "sync_calls": settings.RETRY_BUDGET_SYNC_CALLS,
        }
        return cls(upstream, **{**options, **overrides})

    def forget(self) -> None:
        """Start afresh (at creation, and in a forked child: the parent's counts are the
        parent's to sync, and a lock held at fork would never be released)."""
        self.lock = threading.Lock()
        self.sync_lock = threading.Lock()
        self.pending = Counts()
        self.pending_since: float | None = None
        self.shared: Counts | None = None  # the window's totals over every process, last sync
        self.synced_at = -math.inf
        self.local: dict[int, Counts] = {}  # this process's counts by bucket (process clock)
        self.degraded = False
        self.retry_database_at = -math.inf
        self.retired = False  # replaced by reset_budgets: never syncs again

    @property
    def side(self) -> sidedb.SideConnection:
        # The breakers' per-thread side connection: one more statement on it, not one more
        # connection per thread and process.
        return self._side or breaker_registry.side

    # --- counting and deciding -------------------------------------------------------
    def count_first_attempt(self) -> None:
        with self.lock:
            self._count(Counts(first_attempts=1))

    def spend_retry(self) -> bool:
        """May one more retry go out? Counted as spent if so, as refused if not."""
        with self.lock:
            totals = self._totals()
            allowed = totals.retries + 1 <= self.allowed(totals)
            self._count(Counts(retries=1) if allowed else Counts(refused=1))
        if not allowed:
            RETRY_BUDGET_REFUSALS.labels(self.upstream).inc()
            logger.info("retry budget of %s refused a retry (%s)", self.upstream, totals)
        return allowed

    def allowed(self, totals: Counts) -> float:
        """How many retries the window allows for these totals."""
        return self.ratio * totals.first_attempts + self.floor

    def totals(self) -> Counts:
        """The window's counts this process decides from."""
        with self.lock:
            return self._totals()

    @property
    def is_shared(self) -> bool:
        """Deciding from every process's counts (False: from this process's alone)."""
        return self.shared is not None and not self.degraded

    def refusal(self, failure: BaseException, retry_after: float | None) -> Exception:
        """The error for a refused retry of ``failure``."""
        totals = self.totals()
        return RetryBudgetExhaustedError(
            upstream=self.upstream,
            failure=failure,
            totals=totals,
            allowed=self.allowed(totals),
            window_seconds=self.window_seconds,
            shared=self.is_shared,
            # When the window will have slid by one bucket, unless the upstream asked for more.
            retry_after=round(max(self.width, retry_after or 0.0), 3),
        )

    def _bucket(self, now: float) -> int:
        return math.floor(now / self.width)

    def _count(self, counts: Counts) -> None:
        now = self.clock()
        if self.pending_since is None:
            self.pending_since = now
            _sharing.ensure_running()  # syncs them should no call come to (budget_sharing)
        self.pending += counts
        bucket = self._bucket(now)
        self.local[bucket] = self.local.get(bucket, Counts()) + counts
        for old in [b for b in self.local if b <= bucket - SLOTS]:
            del self.local[old]

    def _totals(self) -> Counts:
        if self.shared is not None and not self.degraded:
            return self.shared + self.pending
        oldest = self._bucket(self.clock()) - SLOTS + 1
        total = Counts()
        for bucket, counts in self.local.items():
            if bucket >= oldest:
                total += counts
        return total

    # --- syncing -----------------------------------------------------------------------
    def sync_due(self) -> bool:
        now = self.clock()
        if self.degraded and now < self.retry_database_at:
            return False
        return now - self.synced_at >= self.sync_seconds or self.pending.events >= self.sync_calls

    def sync_if_due(self) -> None:
        if self.sync_due():
            self.sync()

    def sync_if_idle(self) -> bool:
        """The sharing thread's sync: counts held for a sync interval with no call to sync
        them (``budget_sharing``)."""
        return bool(self.pending.events) and self.sync_due() and self.sync(only_if_pending=True)

    def close_connection(self) -> None:
        self.side.close()  # the calling thread's

    def sync(self, *, only_if_pending: bool = False, wait: bool = False) -> bool:
        """Add this process's unsynced counts to the window and read its totals (one
        statement). False when another thread is syncing (unless ``wait``: for a last sync)
        or the database is unreachable; never raises for the database."""
        if not self.sync_lock.acquire(blocking=wait):
            return False  # another thread is at it: decide from what is known
        try:
            return self._sync(only_if_pending)
        finally:
            self.sync_lock.release()

    def _sync(self, only_if_pending: bool) -> bool:
        with self.lock:
            since = self.pending_since
            if since is not None and self.clock() - since > self.window_seconds:
                # Counted before the database went away, in buckets long gone by.
                self.pending, self.pending_since = Counts(), None
            sending = self.pending
        if self.retired or (only_if_pending and not sending.events):
            return False
        if dbgate.is_unreachable():
            self._database_failed("the listener knows the database is unreachable")
            return False  # never wait for a database known to be away
        params = {
            "upstream": self.upstream,
            "width": self.width,
            "slots": SLOTS,
            "first_attempts": sending.first_attempts,
            "retries": sending.retries,
            "refused": sending.refused,
        }
        try:
            row = self.side.run(lambda cursor: cursor.execute(SYNC, params).fetchone())
        except psycopg.Error as exc:
            self._database_failed(exc)
            return False
        with self.lock:
            self.pending -= sending  # what other threads counted meanwhile stays pending
            self.pending_since = self.clock() if self.pending.events else None
            self.shared = Counts(*row)
            self.synced_at = self.clock()
            if self.degraded:
                logger.warning("retry budget of %s: shared counts again", self.upstream)
            self.degraded = False
        return True

    def _database_failed(self, reason: object) -> None:
        with self.lock:
            if not self.degraded:
                logger.warning(
                    "retry budget of %s: database unreachable, deciding from this process's"
                    " counts (%s)",
                    self.upstream,
                    reason,
                )
            self.degraded = True
            self.retry_database_at = self.clock() + DATABASE_RETRY_SECONDS


_every_budget: weakref.WeakSet[RetryBudget] = weakref.WeakSet()
_budgets: dict[str, RetryBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(upstream: str) -> RetryBudget:
    """This process's budget for ``upstream``, configured from settings on first use."""
    budget = _budgets.get(upstream)
    if budget is None:
        with _budgets_lock:
            budget = _budgets.get(upstream)
            if budget is None:
                budget = _budgets[upstream] = RetryBudget.from_settings(upstream)
    return budget


def reset_budgets() -> None:
    """Forget this process's budgets (tests: each starts with none spent). An old one a
    client still holds never syncs again: its counts would land in the next test's window."""
    with _budgets_lock:
        old = list(_budgets.values())
        _budgets.clear()
    for budget in old:
        with budget.sync_lock:  # a sync under way (the sharing thread's) ends first
            budget.retired = True


# Syncs the budgets of this process whose counts wait for no call.
_sharing = IdleSharing(lambda: list(_budgets.values()))


def _after_fork() -> None:
    global _budgets_lock
    _budgets_lock = threading.Lock()
    for budget in list(_every_budget):
        budget.forget()


os.register_at_fork(after_in_child=_after_fork)
