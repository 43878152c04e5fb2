"""Per-slug lookup figures: hits, misses, fallbacks and when each slug was last seen.

Each process tallies in memory what its lookups answered (``counted`` / ``counted_many``
wrap ``Lookups.lookup`` / ``lookup_many``: the figures come from the answers, so no
lookup path needs to know about them) and adds its tally to ``SlugStats`` with the stats
flush: one statement per flush, never a round trip per lookup.

Bounded (invariant 10), because any client can invent valid slugs:
- in memory, a process keeps at most 2 x LOOKUP_SLUG_STATS_MAX slugs between flushes
  (past that, the busiest LOOKUP_SLUG_STATS_MAX are kept);
- in the table, each flush that adds slugs trims it to LOOKUP_SLUG_STATS_MAX rows: slugs
  looked up within the last day first, the busiest (hits + misses) among them, so a slug
  clients start using now gets in (it outranks every slug gone quiet, however busy once)
  while a flood of invented slugs, one lookup each, loses to the slugs in use; the daily
  purge drops slugs not seen for LOOKUP_SLUG_STATS_RETENTION_DAYS.
Invalid slugs are never counted here (they are not slugs).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Exists, OuterRef

from controlplane.errors.exceptions import UserFacingError
from lookups.exceptions import InvalidSlugError
from lookups.models import MicroService, SlugStats

TOP_MISSES = 20
HITS, MISSES, FALLBACKS = 0, 1, 2


class SlugCounts:
    """This process's per-slug tally since its last flush: slug -> [hits, misses, fallbacks]."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, list[int]] = {}

    def add(self, slug: str, *, hits: int = 0, misses: int = 0, fallbacks: int = 0) -> None:
        with self.lock:
            row = self.counts.get(slug)
            if row is None:
                row = self.counts[slug] = [0, 0, 0]
                if len(self.counts) > 2 * settings.LOOKUP_SLUG_STATS_MAX:
                    self._keep_busiest()
            row[HITS] += hits
            row[MISSES] += misses
            row[FALLBACKS] += fallbacks

    def _keep_busiest(self) -> None:
        """Lock held: keep the LOOKUP_SLUG_STATS_MAX busiest (a flood of invented slugs,
        one lookup each, loses to the slugs clients really use)."""
        busiest = sorted(self.counts.items(), key=lambda item: -(item[1][HITS] + item[1][MISSES]))
        self.counts = dict(busiest[: settings.LOOKUP_SLUG_STATS_MAX])

    def take(self) -> dict[str, list[int]]:
        """Everything tallied so far; the tally starts again from zero."""
        with self.lock:
            taken, self.counts = self.counts, {}
        return taken

    def put_back(self, taken: dict[str, list[int]]) -> None:
        """A flush that failed: its counts wait for the next one (within the same bound)."""
        for slug, (hits, misses, fallbacks) in taken.items():
            self.add(slug, hits=hits, misses=misses, fallbacks=fallbacks)

    def record(self, slug: Any, answer: Any) -> None:
        """Count what a lookup of ``slug`` answered: a result or a user-facing error."""
        if isinstance(answer, InvalidSlugError) or not isinstance(slug, str):
            return
        if isinstance(answer, UserFacingError):  # not found, or the database unavailable
            self.add(slug, misses=1)
        elif answer.fallback_used:
            self.add(slug, misses=1, fallbacks=1)
        elif answer.source == "db":
            self.add(slug, misses=1)
        else:  # from the cache, fresh or (during an outage) stale
            self.add(slug, hits=1)


class _Counted(Protocol):
    slug_counts: SlugCounts


L = TypeVar("L", bound=_Counted)


def counted(method: Callable[[L, Any], Any]) -> Callable[[L, Any], Any]:
    """Tally the slug's answer (or the error it raised) per slug."""

    @functools.wraps(method)
    def lookup(self: L, slug: Any) -> Any:
        try:
            answer = method(self, slug)
        except UserFacingError as exc:
            self.slug_counts.record(slug, exc)
            raise
        self.slug_counts.record(slug, answer)
        return answer

    return lookup


def counted_many(
    method: Callable[[L, list[Any]], list[Any]],
) -> Callable[[L, list[Any]], list[Any]]:
    """Tally each item of a batch (its answers are in the order of its slugs)."""

    @functools.wraps(method)
    def lookup_many(self: L, slugs: list[Any]) -> list[Any]:
        answers = method(self, slugs)
        for slug, answer in zip(slugs, answers, strict=True):
            self.slug_counts.record(slug, answer)
        return answers

    return lookup_many


# Adds a process's tally (slugs sorted: concurrent flushes lock rows in the same order, so
# they cannot deadlock); ``xmax = 0`` marks the rows this statement inserted.
_ADD = """
INSERT INTO lookups_slugstats (slug, hits, misses, fallbacks, last_seen)
SELECT slug, hits, misses, fallbacks, now()
FROM unnest(%(slugs)s::text[], %(hits)s::bigint[], %(misses)s::bigint[], %(fallbacks)s::bigint[])
    AS incoming(slug, hits, misses, fallbacks)
ORDER BY slug
ON CONFLICT (slug) DO UPDATE SET
    hits = lookups_slugstats.hits + EXCLUDED.hits,
    misses = lookups_slugstats.misses + EXCLUDED.misses,
    fallbacks = lookups_slugstats.fallbacks + EXCLUDED.fallbacks,
    last_seen = EXCLUDED.last_seen
RETURNING (xmax = 0) AS inserted
"""
# Keeps the slugs in use, the busiest first. Ranked by lifetime counts alone, a full table
# of slugs busy long ago would delete every new slug straight after its first flush; ranked
# by recency alone, a flood of invented slugs would push out the ones clients use. A day:
# a slug looked up daily stays ranked as in use. Rows another flush holds are skipped (no
# waiting, no deadlock) and trimmed by the next flush that adds slugs.
_TRIM = """
DELETE FROM lookups_slugstats WHERE id = ANY(ARRAY(
    SELECT id FROM lookups_slugstats
    ORDER BY last_seen > now() - interval '1 day' DESC, hits + misses DESC, last_seen DESC
    OFFSET %(keep)s
    FOR UPDATE SKIP LOCKED
))
"""


def flush(counts: SlugCounts) -> None:
    """Add this process's tally to the table (the database down: it waits for next time)."""
    taken = counts.take()
    if not taken:
        return
    slugs = sorted(taken)
    params = {
        "slugs": slugs,
        "hits": [taken[s][HITS] for s in slugs],
        "misses": [taken[s][MISSES] for s in slugs],
        "fallbacks": [taken[s][FALLBACKS] for s in slugs],
    }
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_ADD, params)
            if any(inserted for (inserted,) in cursor.fetchall()):
                cursor.execute(_TRIM, {"keep": settings.LOOKUP_SLUG_STATS_MAX})
    except OperationalError:
        counts.put_back(taken)
        if not connection.in_atomic_block:
            connection.close()  # perhaps broken: the next flush opens a new one


def top_misses(limit: int = TOP_MISSES) -> list[dict[str, Any]]:
    """The slugs that miss (and fall back) most, with whether they are registered: a
    registered one to warm (or a cache too small), an unregistered one to register (or a
    client to talk to)."""
    registered = MicroService.objects.filter(slug=OuterRef("slug"), active=True)
    return list(
        SlugStats.objects.filter(misses__gt=0)
        .annotate(registered=Exists(registered))
        .order_by("-misses", "-fallbacks", "slug")
        .values("slug", "registered", "hits", "misses", "fallbacks", "last_seen")[:limit]
    )
