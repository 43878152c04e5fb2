"""The one lookup flow used by the API, the jobs app and the admin.

    1. validate the slug                     -> InvalidSlugError (400, recovery: abort)
    2. in-process cache (TTL + LRU)          -> source "cache"
    3. database unreachable (the gate is closed) or breaker "lookups-db" open
                                             -> degraded at once, no database call
    4. database, retried on connection errors only (backoff 100 ms x2, cap 2 s, 3 retries)
    5. found -> cached, source "db"; not found -> MicroServiceNotFoundError (404, recovery:
       fallback, the caller may go on slug-only); unreachable -> degraded
    Degraded (the same answer for a single lookup and a batch item): the mapping this
    process held when its listener lost the database, ``stale`` with its age, for up to
    LOOKUP_STALE_IF_ERROR_SECONDS; otherwise the slug-only fallback (uuid None). Both
    carry the reason (code, message, recovery "fallback").

The cache is trusted only while this process is listening for changes
(NOTIFY from the table's trigger); otherwise every lookup reads the database,
so no process serves a stale UUID for longer than the notification takes. A value
read from the database is cached only if no invalidation of its slug arrived since
before the read, checked and stored in one step with the invalidation's drop
(``LookupCache.put_if``), so a change landing in between cannot be overwritten.
When the listener loses its connection, what the cache held is kept for stale answers
only (``controlplane.lib.stale``): correct as of the listener's last round trip, and
cleared by the reconnection's reset.
"""

from __future__ import annotations

import functools
import re
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection

from controlplane.breakers.circuit import CircuitBreaker
from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.errors.exceptions import UserFacingError, service_code_prefix
from controlplane.lib import dbgate, notifications
from controlplane.lib.notifications import CacheGuard
from controlplane.resilience.retry import RetryPolicy
from lookups import clearing, stats, warming
from lookups.cache import LookupCache
from lookups.exceptions import DatabaseConnectionError, InvalidSlugError, MicroServiceNotFoundError
from lookups.metrics import LookupMetrics
from lookups.models import SLUG_MAX_LENGTH, SLUG_PATTERN, MicroService
from lookups.prometheus_export import PrometheusExport
from lookups.slug_counts import SlugCounts, counted, counted_many
from lookups.upkeep import Upkeep

CHANNEL = "controlplane_lookups"
BREAKER = "lookups-db"
_SLUG = re.compile(SLUG_PATTERN)


@dataclass(frozen=True)
class Degraded:
    """Why an answer is stale or the slug-only fallback; ``recovery`` as in error envelopes."""

    code: str
    message: str
    recovery: str = "fallback"


DATABASE_UNAVAILABLE = Degraded(
    DatabaseConnectionError.code,
    "The micro-service registry cannot be reached: continue with this answer (the slug "
    "only when uuid is null).",
)
BREAKER_OPEN = Degraded(
    f"{service_code_prefix(BREAKER)}_CIRCUIT_OPEN",
    "The micro-service registry is paused after repeated failures: continue with this "
    "answer (the slug only when uuid is null).",
)


@dataclass(frozen=True)
class LookupResult:
    slug: str
    uuid: uuid.UUID | None
    source: str  # cache | db | fallback
    fallback_used: bool = False
    stale: bool = False
    stale_age_seconds: float | None = None  # since the value was last known correct
    reason: Degraded | None = None  # set on stale and fallback answers


def validate_slug(slug: Any) -> str:
    if not isinstance(slug, str) or len(slug) > SLUG_MAX_LENGTH or not _SLUG.fullmatch(slug):
        shown = str(slug)[:120]
        raise InvalidSlugError(
            f"{shown!r} is not a valid micro-service slug: use 1-{SLUG_MAX_LENGTH} lowercase "
            "letters, digits and single hyphens.",
            metadata={"recovery": "abort", "slug": shown},
        )
    return slug


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError)


def _worth_retrying(exc: BaseException) -> bool:
    # Once the listener knows the database is away, another try only fails at the gate.
    return _is_connection_error(exc) and not dbgate.is_unreachable()


def _fresh_connection(attempt: int, exc: BaseException, delay: float) -> None:
    """Before a retry: drop the broken connection so Django opens a new one (it only
    reconnects when the old one is gone). Inside a transaction the caller must decide."""
    if not connection.in_atomic_block:
        connection.close()


def _not_found(slug: str) -> MicroServiceNotFoundError:
    return MicroServiceNotFoundError(
        f"No active micro-service with slug {slug!r}.",
        metadata={"recovery": "fallback", "slug": slug},
    )


class Lookups:
    """This process's cache, metrics and breaker for slug lookups."""

    def __init__(self) -> None:
        self.cache = LookupCache(
            max_size=settings.LOOKUP_CACHE_MAX_SIZE, ttl_seconds=settings.LOOKUP_CACHE_TTL
        )
        self.guard = CacheGuard(
            CHANNEL,
            on_change=self.cache.drop,
            on_reset=self.cache.clear,
            on_lost=self.cache.keep,
        )
        self.metrics = LookupMetrics()
        self.export = PrometheusExport(self.metrics)
        self.breaker = CircuitBreaker(BREAKER, is_failure=_is_connection_error)
        self.retry = RetryPolicy(
            max_attempts=settings.LOOKUP_DB_RETRIES + 1,
            initial_delay=0.1,
            factor=2.0,
            max_delay=2.0,
            jitter="full",
            deadline=None,
            retryable=_worth_retrying,
        )
        self._answer_warm = functools.partial(warming.answer, self)
        self._answer_clear = functools.partial(clearing.answer, self)
        self.answering_warm = False
        self.last_stats_flush = 0.0
        self.lock = threading.Lock()
        self.slug_counts = SlugCounts()
        # The expiry sweep and the stats flush, in this process (lookups.upkeep).
        self.upkeep = Upkeep(
            sweep=lambda: self.cache.cleanup_expired(),
            flush=lambda: self._maybe_flush_stats(force=True),
        )

    # --- coherence -----------------------------------------------------------------
    def listen(self) -> None:
        """Follow changes to the table, answer other processes' warm and clear requests,
        and sweep and flush periodically."""
        self.guard.listen()
        self.upkeep.start()
        if not self.answering_warm:
            with self.lock:
                if not self.answering_warm:
                    notifications.subscribe(warming.CHANNEL, self._answer_warm, lambda: None)
                    notifications.subscribe(clearing.CHANNEL, self._answer_clear, lambda: None)
                    self.answering_warm = True

    def close(self) -> None:
        """Stop receiving changes and warm requests (this instance is being replaced)."""
        self.guard.close()
        notifications.listener.unsubscribe(warming.CHANNEL, self._answer_warm)
        notifications.listener.unsubscribe(clearing.CHANNEL, self._answer_clear)
        self.answering_warm = False
        self.upkeep.stop()
        self.export.push()

    def clear(self) -> int:
        """Drop every entry (ops' "clear cache", ``lookups.clearing``); the reset also keeps
        reads in flight from caching what they read. The number of entries dropped."""
        held = len(self.cache)
        self.guard.reset()
        self.cache.clear()
        return held

    # --- lookups -------------------------------------------------------------------
    @counted
    def lookup(self, slug: Any) -> LookupResult:
        started = time.perf_counter()
        try:
            slug = validate_slug(slug)
        except InvalidSlugError:
            self.metrics.count("lookups", "invalid")
            raise
        if self.guard.trusted():
            cached = self.cache.get(slug)
            if cached is not None:  # the stored value is the ready, immutable result
                self.metrics.count(
                    "lookups", "hits", path="cache", seconds=time.perf_counter() - started
                )
                return cached
        self.listen()
        seen = self.guard.stamp(slug)
        self.metrics.count("lookups", "misses")
        found: uuid.UUID | None = None
        reason = self._refusal()
        if reason is None:
            try:
                found = self.retry.call(
                    lambda: self.breaker.call(self._query_one, slug), on_retry=_fresh_connection
                )
            except CircuitOpenError:
                reason = BREAKER_OPEN
            except OperationalError:
                self.metrics.count("errors")
                reason = DATABASE_UNAVAILABLE
            finally:
                self._maybe_flush_stats()
        if reason is not None:
            return self._degraded(slug, reason)
        self.metrics.observe("db", time.perf_counter() - started)
        if found is None:
            self.metrics.count("not_found")
            raise _not_found(slug)
        self.metrics.count("found")
        self.cache.put_if(
            slug,
            LookupResult(slug, found, "cache"),
            lambda: self.guard.trusted() and self.guard.stamp(slug) == seen,
        )
        return LookupResult(slug, found, "db")

    def _refusal(self) -> Degraded | None:
        """Why the database is not asked at all now, or None."""
        if dbgate.is_unreachable():  # the listener knows: fail fast, no connection attempt
            return DATABASE_UNAVAILABLE
        if not self.breaker.allows():
            return BREAKER_OPEN
        return None

    def _degraded(self, slug: str, reason: Degraded) -> LookupResult:
        """The database cannot answer for ``slug``: what this process held when its listener
        lost the database (stale, with its age), else the slug-only fallback. Single
        lookups and batch items both answer through here, so they never differ."""
        kept = self.cache.get_kept(slug, settings.LOOKUP_STALE_IF_ERROR_SECONDS)
        if kept is not None:
            value, age = kept
            self.metrics.count("stale")
            return replace(
                value, source="cache", stale=True, stale_age_seconds=round(age, 3), reason=reason
            )
        self.metrics.count("fallbacks")
        return LookupResult(slug, None, "fallback", fallback_used=True, reason=reason)

    def _query_one(self, slug: str) -> uuid.UUID | None:
        return (
            MicroService.objects.filter(slug=slug, active=True)
            .values_list("uuid", flat=True)
            .first()
        )

    @counted_many
    def lookup_many(self, slugs: list[Any]) -> list[LookupResult | UserFacingError]:
        """Each slug's result or error, with one database query for all cache misses."""
        self.listen()
        results: dict[int, LookupResult | UserFacingError] = {}
        misses: dict[str, list[int]] = {}
        trusted = self.guard.trusted()
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
        seen = {slug: self.guard.stamp(slug) for slug in misses}
        if misses:
            started = time.perf_counter()
            found: dict[str, uuid.UUID] = {}
            reason = self._refusal()
            if reason is None:
                try:
                    found = self.retry.call(
                        lambda: self.breaker.call(self._query_many, list(misses)),
                        on_retry=_fresh_connection,
                    )
                except CircuitOpenError:
                    reason = BREAKER_OPEN
                except OperationalError:
                    self.metrics.count("errors")
                    reason = DATABASE_UNAVAILABLE
            if reason is None:  # as a single lookup: answers the database gave, not failures
                self.metrics.observe("db", time.perf_counter() - started)
            for slug, indexes in misses.items():
                for index in indexes:
                    if reason is not None:
                        results[index] = self._degraded(slug, reason)
                    elif slug in found:
                        self.metrics.count("found")
                        results[index] = LookupResult(slug, found[slug], "db")
                    else:
                        self.metrics.count("not_found")
                        results[index] = _not_found(slug)
            if found and trusted:
                self.cache.put_many_if(
                    ((s, LookupResult(s, u, "cache")) for s, u in found.items()),
                    # not invalidated while we read
                    lambda s: self.guard.trusted() and self.guard.stamp(s) == seen[s],
                )
        self._maybe_flush_stats()
        return [results[index] for index in range(len(slugs))]

    def _query_many(self, slugs: list[str]) -> dict[str, uuid.UUID]:
        return dict(
            MicroService.objects.filter(slug__in=slugs, active=True).values_list("slug", "uuid")
        )

    # --- warming -------------------------------------------------------------------
    def warm(self, slugs: list[str] | None = None) -> int:
        """Load active mappings into this process's cache (the given slugs, or the newest up
        to the cache size); every process, see ``lookups.warming``."""
        self.listen()
        guard = self.guard
        resets, versions = guard.resets, dict(guard.versions)
        query = MicroService.objects.filter(active=True)
        if slugs:
            query = query.filter(slug__in=[validate_slug(s) for s in slugs])
        newest = query.order_by("-updated_at").values_list("slug", "uuid")
        rows = list(newest[: self.cache.max_size])
        if guard.resets != resets:  # everything was invalidated while we read: read again
            return self.warm(slugs)
        return self.cache.put_many_if(
            ((slug, LookupResult(slug, value, "cache")) for slug, value in rows),
            # skip what changed meanwhile
            lambda slug: guard.stamp(slug) == (resets, versions.get(slug, 0)),
        )

    # --- stats ---------------------------------------------------------------------
    def _maybe_flush_stats(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_stats_flush < settings.LOOKUP_STATS_FLUSH_SECONDS:
            return
        self.last_stats_flush = now
        self.export.push()  # first: it needs no database
        stats.flush(self.metrics, self.cache, self.slug_counts)

    def stats(self) -> dict[str, Any]:
        """This process's figures and every recently reporting process's (``lookups.stats``)."""
        self._maybe_flush_stats(force=True)
        return stats.collect(self.metrics, self.cache)


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


def count_breaker_opens(sender: Any, name: str, to_state: str, **kwargs: Any) -> None:
    """breaker_transition receiver (connected in LookupsConfig.ready)."""
    if name == BREAKER and to_state == "open":
        get_lookups().metrics.count("breaker_opens")
