"""The retry budget's one statement (see ``controlplane.resilience.budget``)."""

from __future__ import annotations

# Add one process's counts to the current bucket and read the window's totals, in one
# statement. A slot whose bucket has gone by starts again from this process's counts. The
# totals are the row as this statement left it (RETURNING sees the other processes'
# committed counts too: ON CONFLICT locks and re-reads the row) plus the window's earlier
# buckets, which no sync changes any more.
SYNC = """
WITH clock AS (
    SELECT floor(extract(epoch FROM now()) / %(width)s)::bigint AS bucket
), counted AS (
    INSERT INTO resilience_retrybudgetbucket AS b
        (upstream, slot, started_at, first_attempts, retries, refused, updated_at)
    SELECT %(upstream)s, clock.bucket %% %(slots)s, to_timestamp(clock.bucket * %(width)s),
           %(first_attempts)s, %(retries)s, %(refused)s, now()
    FROM clock
    ON CONFLICT (upstream, slot) DO UPDATE SET
        first_attempts = EXCLUDED.first_attempts + CASE WHEN b.started_at = EXCLUDED.started_at
                                                        THEN b.first_attempts ELSE 0 END,
        retries = EXCLUDED.retries + CASE WHEN b.started_at = EXCLUDED.started_at
                                          THEN b.retries ELSE 0 END,
        refused = EXCLUDED.refused + CASE WHEN b.started_at = EXCLUDED.started_at
                                          THEN b.refused ELSE 0 END,
        started_at = EXCLUDED.started_at,
        updated_at = now()
    RETURNING b.first_attempts, b.retries, b.refused
), earlier AS (
    SELECT coalesce(sum(o.first_attempts), 0) AS first_attempts,
           coalesce(sum(o.retries), 0) AS retries,
           coalesce(sum(o.refused), 0) AS refused
    FROM resilience_retrybudgetbucket o, clock
    WHERE o.upstream = %(upstream)s
      AND o.started_at >= to_timestamp((clock.bucket - %(slots)s + 1) * %(width)s)
      AND o.started_at < to_timestamp(clock.bucket * %(width)s)
)
SELECT (counted.first_attempts + earlier.first_attempts)::bigint,
       (counted.retries + earlier.retries)::bigint,
       (counted.refused + earlier.refused)::bigint
FROM counted, earlier
"""
