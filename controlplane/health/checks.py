"""What GET /api/v1/health/ reports: cheap checks only (one round trip each, indexed)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Min
from django.utils import timezone
from django_q.status import Stat

from controlplane.breakers.models import Breaker
from controlplane.breakers.registry import registry
from controlplane.breakers.snapshot import CLOSED
from controlplane.errors import spool
from controlplane.health.probes import latest
from controlplane.lib import dbgate
from controlplane.lib.notifications import listener
from controlplane.resilience.budget import SLOTS
from controlplane.resilience.models import RetryBudgetBucket
from jobs.models import Job, JobStatus
from lookups.metrics import summarise
from lookups.resolver import get_lookups

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
_ORDER = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}
_migrations_cache: dict[str, Any] = {"checked": 0.0, "pending": None}
# The current bucket and the one before: a bucket just begun has had no time to fill, and
# processes add their counts up to RETRY_BUDGET_SYNC_SECONDS late.
REFUSING_BUCKETS = 2
MIGRATIONS_RECHECK_SECONDS = 60
# Load balancers give up on a slow health check; so does this one, and says so.
HEALTH_BUDGET_SECONDS = 0.7
# The database checks run on a pool of their own, so a request never waits on a dead
# network past the budget; a check still stuck there is cut loose by the listener.
_pool: dict[str, Any] = {"pid": None, "executor": None}


def _executor() -> ThreadPoolExecutor:
    """This process's pool (a forked child must not use its parent's: those threads are
    gone)."""
    if _pool["pid"] != os.getpid():
        _pool.update(
            pid=os.getpid(),
            executor=ThreadPoolExecutor(max_workers=2, thread_name_prefix="health-db"),
        )
    return _pool["executor"]


def _worst(statuses: list[str]) -> str:
    return max(statuses, key=_ORDER.__getitem__, default=HEALTHY)


def database() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        connection.close()
        return {"status": UNHEALTHY, "error": type(exc).__name__}
    return {"status": HEALTHY, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def migrations() -> dict[str, Any]:
    """Pending migrations (the graph is loaded at most once a minute per process)."""
    now = time.monotonic()
    if (
        _migrations_cache["pending"] is None
        or now - _migrations_cache["checked"] > MIGRATIONS_RECHECK_SECONDS
    ):
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        _migrations_cache.update(checked=now, pending=len(plan))
    pending = _migrations_cache["pending"]
    return {"status": DEGRADED if pending else HEALTHY, "pending": pending}


def worker_clusters() -> int:
    """django-q2 clusters that reported alive (their stats live in the shared "cluster"
    cache, a database table)."""
    return sum(str(stat.status) in ("Idle", "Working", "Starting") for stat in Stat.get_all())


def workers() -> dict[str, Any]:
    clusters = worker_clusters()
    queued = Job.objects.filter(status=JobStatus.QUEUED)
    depth = queued.count()
    oldest = queued.aggregate(oldest=Min("run_after"))["oldest"]
    oldest_age = round((timezone.now() - oldest).total_seconds(), 1) if oldest else None
    status = HEALTHY
    if not clusters or (oldest_age is not None and oldest_age > 300):
        status = DEGRADED
    return {
        "status": status,
        "clusters": clusters,
        "queue_depth": depth,
        "oldest_queued_age_seconds": oldest_age,
    }


def breakers() -> dict[str, Any]:
    """This service's breakers: a client's open breaker is the client's upstream, not ours
    (clients' ones are only counted)."""
    not_closed = list(
        Breaker.objects.not_closed().filter(owner=None).only("name", "state", "override")
    )
    opened = [b.name for b in not_closed if b.effective_state != CLOSED]
    return {
        "status": DEGRADED if opened or registry.degraded else HEALTHY,
        "open": len(opened),
        "open_names": opened[:20],
        "overridden": [b.name for b in not_closed if b.override],
        "clients_not_closed": Breaker.objects.not_closed().exclude(owner=None).count(),
        "runtime_degraded": registry.degraded,
    }


def providers() -> dict[str, Any]:
    checks = latest()
    detail = {}
    for name in settings.PROVIDERS:
        check = checks.get(name)
        detail[name] = (
            {
                "status": check.status,
                "latency_ms": check.latency_ms,
                "detail": check.detail,
                "checked_at": check.checked_at.isoformat(),
            }
            if check
            else {"status": "unknown"}
        )
    unhealthy = [n for n, d in detail.items() if d["status"] == UNHEALTHY]
    return {"status": DEGRADED if unhealthy else HEALTHY, "providers": detail}


def retry_budgets() -> dict[str, Any]:
    """Each upstream's retry budget over the current window, summed over every process
    (one query on a table of at most upstreams x 12 rows). Degraded while one refuses:
    "refusing" is the upstreams that refused a retry in the newest REFUSING_BUCKETS buckets
    (with the default 60 s window, the last 5 to 10 s), not anywhere in the window, or one
    refusal would keep health degraded for a minute."""
    window = settings.RETRY_BUDGET_WINDOW_SECONDS
    totals = RetryBudgetBucket.objects.in_window(window).totals_by_upstream(
        refused_within=REFUSING_BUCKETS * window / SLOTS
    )
    upstreams = {}
    refusing = []
    for name, counts in totals.items():
        if counts.pop("refused_recently"):
            refusing.append(name)
        upstreams[name] = {
            **counts,
            "allowed_retries": int(
                settings.RETRY_BUDGET_RATIO * counts["first_attempts"]
                + settings.RETRY_BUDGET_MIN_PER_WINDOW
            ),
        }
    return {
        "status": DEGRADED if refusing else HEALTHY,
        "window_seconds": window,
        "refusing": refusing,
        "upstreams": upstreams,
    }


def error_spool() -> dict[str, Any]:
    """This machine's spool, from file sizes alone (the endpoint is unauthenticated: it
    must not read the rows)."""
    backlog = spool.backlog()
    return {
        "status": DEGRADED if backlog.bytes else HEALTHY,
        "backlog_bytes": backlog.bytes,
        "backlog_files": backlog.files,
        "disk_bytes": backlog.disk_bytes,
        "max_bytes": settings.ERROR_SPOOL_MAX_BYTES,
    }


def lookup_cache() -> dict[str, Any]:
    lookups = get_lookups()
    summary = summarise(lookups.metrics.raw())
    return {
        "status": HEALTHY,
        "entries": len(lookups.cache),
        "hit_rate": summary["hit_rate"],
        "lookups": summary["lookups"],
    }


_DATABASE_CHECKS = (
    ("migrations", migrations),
    ("workers", workers),
    ("breakers", breakers),
    ("providers", providers),
    ("retry_budgets", retry_budgets),
)


def _database_checks(into: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The checks that read the database, each result put in ``into`` as soon as it is known
    (so a caller that stops waiting keeps what was answered)."""
    checks = into if into is not None else {}
    checks["database"] = database()
    if checks["database"]["status"] == HEALTHY:
        for name, check in _DATABASE_CHECKS:
            try:
                checks[name] = check()
            except DatabaseError as exc:
                connection.close()
                checks[name] = {"status": UNHEALTHY, "error": type(exc).__name__}
    return checks


def _database_checks_within(budget: float) -> dict[str, dict[str, Any]]:
    listener.ensure_running()  # what tells this process that the database went away
    if dbgate.is_unreachable():
        return {
            "database": {
                "status": UNHEALTHY,
                "error": "unreachable",
                "unreachable_for_seconds": dbgate.unreachable_for(),
            }
        }
    answered: dict[str, dict[str, Any]] = {}
    future = _executor().submit(_database_checks, answered)
    try:
        return future.result(timeout=budget)
    except FutureTimeout:
        future.cancel()  # if it never started, it never will
    late = {"error": f"no answer within {budget} s"}
    checks = dict(answered)
    if checks.get("database", {}).get("status") != HEALTHY:
        return {"database": {"status": UNHEALTHY, **late}}
    # The database answered; a slower check (the migration graph, reloaded each minute,
    # on a busy machine) is reported as such, not as an outage.
    for name, _check in _DATABASE_CHECKS:
        checks.setdefault(name, {"status": DEGRADED, **late})
    return checks


def collect(*, budget: float | None = None) -> dict[str, Any]:
    """Every check. With a ``budget`` (seconds) the database checks answer unhealthy when
    they take longer, and at once while the database is known to be unreachable."""
    checks = _database_checks() if budget is None else _database_checks_within(budget)
    checks["error_spool"] = error_spool()
    checks["lookup_cache"] = lookup_cache()
    return {
        "status": _worst([c["status"] for c in checks.values()]),
        "checked_at": timezone.now().isoformat(),
        "checks": checks,
    }
