"""The one lookup flow used by the API, the jobs app and the admin.

    1. validate the slug                     -> InvalidSlugError (400, recovery: abort)
    2. in-process cache (TTL + LRU)          -> source "cache"
    3. breaker "lookups-db" open             -> fallback at once, no database call
    4. database, retried on connection errors only (backoff 100 ms x2, cap 2 s, 3 retries)
    5. found -> cached, source "db"; not found -> MicroServiceNotFoundError (404, recovery:
       fallback, the caller may go on slug-only); unreachable -> DatabaseConnectionError
       (503, recovery: fallback)

The cache is trusted only while this process is listening for changes
(NOTIFY from the table's trigger); otherwise every lookup reads the database,
so no process serves a stale UUID for longer than the notification takes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection
from django.db.models.functions import Now

from controlplane import notifications
from controlplane.breakers.library import CircuitBreaker
from controlplane.breakers.runtime import CircuitOpenError
from controlplane.breakers.signals import breaker_transition
from controlplane.errors.exceptions import (
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
    UserFacingError,
)
from controlplane.resilience.retry import RetryPolicy
from lookups.cache import LookupCache
from lookups.metrics import LookupMetrics
from lookups.models import SLUG_MAX_LENGTH, SLUG_PATTERN, MicroService

logger = logging.getLogger("controlplane.lookups")

CHANNEL = "controlplane_lookups"
WARM_CHANNEL = "controlplane_lookups_warm"
BREAKER = "lookups-db"
_SLUG = re.compile(SLUG_PATTERN)


class InvalidSlugError(InvalidRequestError):
    code = "INVALID_SLUG"
    recovery = "abort"


class MicroServiceNotFoundError(NotFoundError):
    code = "MICRO_SERVICE_NOT_FOUND"
    recovery = "fallback"


class DatabaseConnectionError(ServiceUnavailableError):
    code = "LOOKUP_DATABASE_UNAVAILABLE"
    recovery = "fallback"


@dataclass(frozen=True)
class LookupResult:
    slug: str
    uuid: uuid.UUID | None
    source: str  # cache | db | fallback
    fallback_used: bool = False


def validate_slug(slug: Any) -> str:
    if not isinstance(slug, str) or len(slug) > SLUG_MAX_LENGTH or not _SLUG.match(slug):
        shown = str(slug)[:120]
        raise InvalidSlugError(
            f"{shown!r} is not a valid micro-service slug: use 1-{SLUG_MAX_LENGTH} lowercase "
            "letters, digits and single hyphens.",
            metadata={"recovery": "abort", "slug": shown},
        )
    return slug


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError)


def _fresh_connection(attempt: int, exc: BaseException, delay: float) -> None:
    """Before a retry: drop the broken connection so Django opens a new one (it only
    reconnects when the old one is gone). Inside a transaction the caller must decide."""
    if not connection.in_atomic_block:
        connection.close()


def process_name() -> str:
    role = "worker" if any(a in ("qcluster", "runworker") for a in sys.argv) else "web"
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


class Lookups:
    """This process's cache, metrics and breaker for slug lookups."""

    def __init__(self) -> None:
        self.cache = LookupCache(
            max_size=settings.LOOKUP_CACHE_MAX_SIZE, ttl_seconds=settings.LOOKUP_CACHE_TTL
        )
        self.metrics = LookupMetrics()
        self.breaker = CircuitBreaker(BREAKER, is_failure=_is_connection_error)
        self.retry = RetryPolicy(
            max_attempts=settings.LOOKUP_DB_RETRIES + 1,
            initial_delay=0.1,
            factor=2.0,
            max_delay=2.0,
            jitter="full",
            deadline=None,
            retryable=_is_connection_error,
        )
        self.subscribed = False
        # Invalidation counters (whole cache, per slug): see _version().
        self.resets = 0
        self.versions: dict[str, int] = {}
        self.last_stats_flush = 0.0
        self.lock = threading.Lock()

    # --- coherence -----------------------------------------------------------------
    def listen(self) -> None:
        if not self.subscribed:
            with self.lock:
                if not self.subscribed:
                    notifications.subscribe(CHANNEL, self._changed, self._reset)
                    notifications.subscribe(WARM_CHANNEL, self._warm_requested, lambda: None)
                    self.subscribed = True
        else:
            notifications.listener.ensure_running()

    def close(self) -> None:
        """Stop receiving changes and warm requests (this instance is being replaced)."""
        notifications.listener.unsubscribe(CHANNEL, self._changed)
        notifications.listener.unsubscribe(WARM_CHANNEL, self._warm_requested)
        self.subscribed = False

    def _changed(self, slug: str) -> None:
        if slug == "*":
            self._reset()
            return
        self.versions[slug] = self.versions.get(slug, 0) + 1
        self.cache.drop(slug)

    def _reset(self) -> None:
        self.resets += 1
        self.cache.clear()

    def _version(self, slug: str) -> tuple[int, int]:
        """Changes when ``slug`` (or everything) is invalidated: a value read before such a
        change must not be cached, it may already be stale."""
        return self.resets, self.versions.get(slug, 0)

    def cache_trusted(self) -> bool:
        return notifications.listener.is_listening(CHANNEL)

    # --- lookups -------------------------------------------------------------------
    def lookup(self, slug: Any) -> LookupResult:
        started = time.perf_counter()
        try:
            slug = validate_slug(slug)
        except InvalidSlugError:
            self.metrics.count("lookups", "invalid")
            raise
        if notifications.listener.is_listening(CHANNEL):
            cached = self.cache.get(slug)
            if cached is not None:  # the stored value is the ready, immutable result
                self.metrics.count(
                    "lookups", "hits", path="cache", seconds=time.perf_counter() - started
                )
                return cached
        self.listen()
        seen = self._version(slug)
        self.metrics.count("lookups", "misses")
        if not self.breaker.allows():
            self.metrics.count("fallbacks")
            return LookupResult(slug, None, "fallback", fallback_used=True)
        try:
            found = self.retry.call(
                lambda: self.breaker.call(self._query_one, slug), on_retry=_fresh_connection
            )
        except CircuitOpenError:
            self.metrics.count("fallbacks")
            return LookupResult(slug, None, "fallback", fallback_used=True)
        except OperationalError as exc:
            self.metrics.count("errors")
            raise DatabaseConnectionError(
                "Micro-service lookups are temporarily unavailable; continue with the slug only.",
                original=exc,
                retry_after=5,
                metadata={"recovery": "fallback", "slug": slug},
            ) from exc
        finally:
            self._maybe_flush_stats()
        self.metrics.observe("db", time.perf_counter() - started)
        if found is None:
            self.metrics.count("not_found")
            raise MicroServiceNotFoundError(
                f"No active micro-service with slug {slug!r}.",
                metadata={"recovery": "fallback", "slug": slug},
            )
        self.metrics.count("found")
        if self.cache_trusted() and self._version(slug) == seen:
            self.cache.put(slug, LookupResult(slug, found, "cache"))
        return LookupResult(slug, found, "db")

    def _query_one(self, slug: str) -> uuid.UUID | None:
        return (
            MicroService.objects.filter(slug=slug, active=True)
            .values_list("uuid", flat=True)
            .first()
        )

    def lookup_many(self, slugs: list[Any]) -> list[LookupResult | UserFacingError]:
        """Each slug's result or error, with one database query for all cache misses."""
        self.listen()
        resets = self.resets
        results: dict[int, LookupResult | UserFacingError] = {}
        misses: dict[str, list[int]] = {}
        trusted = self.cache_trusted()
        for index, raw in enumerate(slugs):
            self.metrics.count("lookups")
            try:
                slug = validate_slug(raw)
            except InvalidSlugError as exc:
                self.metrics.count("invalid")
                results[index] = exc
                continue
            cached = self.cache.get(slug) if trusted else None
            if cached is not None:
                self.metrics.count("hits")
                results[index] = cached
            else:
                self.metrics.count("misses")
                misses.setdefault(slug, []).append(index)
        seen = {slug: self._version(slug) for slug in misses}
        if misses:
            started = time.perf_counter()
            found: dict[str, uuid.UUID] | None = None
            if self.breaker.allows():
                try:
                    found = self.retry.call(
                        lambda: self.breaker.call(self._query_many, list(misses)),
                        on_retry=_fresh_connection,
                    )
                except (CircuitOpenError, OperationalError):
                    found = None
            self.metrics.observe("db", time.perf_counter() - started)
            for slug, indexes in misses.items():
                for index in indexes:
                    if found is None:
                        self.metrics.count("fallbacks")
                        results[index] = LookupResult(slug, None, "fallback", fallback_used=True)
                    elif slug in found:
                        self.metrics.count("found")
                        results[index] = LookupResult(slug, found[slug], "db")
                    else:
                        self.metrics.count("not_found")
                        results[index] = MicroServiceNotFoundError(
                            f"No active micro-service with slug {slug!r}.",
                            metadata={"recovery": "fallback", "slug": slug},
                        )
            if found and trusted and self.resets == resets:
                self.cache.put_many(
                    (s, LookupResult(s, u, "cache"))
                    for s, u in found.items()
                    if self._version(s) == seen[s]  # not invalidated while we read
                )
        self._maybe_flush_stats()
        return [results[index] for index in range(len(slugs))]

    def _query_many(self, slugs: list[str]) -> dict[str, uuid.UUID]:
        return dict(
            MicroService.objects.filter(slug__in=slugs, active=True).values_list("slug", "uuid")
        )

    # --- warming -------------------------------------------------------------------
    def warm(self, slugs: list[str] | None = None) -> int:
        """Load active mappings (the given slugs, or the newest up to the cache size)."""
        self.listen()
        resets, versions = self.resets, dict(self.versions)
        query = MicroService.objects.filter(active=True)
        if slugs:
            query = query.filter(slug__in=[validate_slug(s) for s in slugs])
        newest = query.order_by("-updated_at").values_list("slug", "uuid")
        rows = list(newest[: self.cache.max_size])
        if self.resets != resets:  # everything was invalidated while we read: read again
            return self.warm(slugs)
        return self.cache.put_many(
            (slug, LookupResult(slug, value, "cache"))
            for slug, value in rows
            if self.versions.get(slug, 0) == versions.get(slug, 0)  # skip what changed meanwhile
        )

    def _warm_requested(self, payload: str) -> None:
        """A warm broadcast: warm in a thread of its own, so slow queries never hold up the
        listener (and the invalidations it delivers)."""
        threading.Thread(target=self._warm_and_report, args=(payload,), daemon=True).start()

    def _warm_and_report(self, payload: str) -> None:
        """Warm this process's cache and report how many entries it loaded."""
        try:
            request = json.loads(payload)
            if request.get("origin") == process_name():
                return  # the requesting process warmed itself already
            warmed = self.warm(request.get("slugs") or None)
            from lookups.models import WarmReport

            WarmReport.objects.create(
                request_id=request["request_id"], process=process_name(), warmed=warmed
            )
        except Exception:
            logger.exception("cache warm request failed in %s", process_name())
        finally:
            connection.close()  # the listener thread keeps no idle ORM connection

    # --- stats ---------------------------------------------------------------------
    def _maybe_flush_stats(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_stats_flush < settings.LOOKUP_STATS_FLUSH_SECONDS:
            return
        self.last_stats_flush = now
        from lookups.models import ProcessStats

        with suppress(OperationalError):  # database down: the stats wait for the next flush
            ProcessStats.objects.update_or_create(
                process=process_name(),
                defaults={
                    "data": {**self.metrics.raw(), "cache_size": len(self.cache)},
                    "updated_at": Now(),
                },
            )

    def flush_stats(self) -> None:
        self._maybe_flush_stats(force=True)


_lookups: Lookups | None = None
_lookups_lock = threading.Lock()


def get_lookups() -> Lookups:
    global _lookups
    if _lookups is None:
        with _lookups_lock:
            if _lookups is None:
                _lookups = Lookups()
    return _lookups


def reset_lookups() -> None:
    """Tests: a fresh cache and metrics with the current settings."""
    global _lookups
    with _lookups_lock:
        if _lookups is not None:
            _lookups.close()
        _lookups = None


def lookup(slug: Any) -> LookupResult:
    return get_lookups().lookup(slug)


def _count_breaker_opens(sender: Any, name: str, to_state: str, **kwargs: Any) -> None:
    if name == BREAKER and to_state == "open":
        get_lookups().metrics.count("breaker_opens")


breaker_transition.connect(_count_breaker_opens, dispatch_uid="lookups.breaker_opens")
