"""Child process for the cross-process retry-budget test: one "service" calling a dead
upstream through the real ServiceClient (shared breaker, RetryPolicy, the settings' retry
budget shared through PostgreSQL).

    python -m tests.resilience.budget_child NAME URL CALLS

Prints ``{"ready": true}`` once set up, waits for a line on stdin (so every child starts
at once), makes CALLS calls one after another, syncs its last counts and prints what its
calls returned.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import django

django.setup()

from controlplane.breakers.circuit import breaker  # noqa: E402
from controlplane.errors.exceptions import UserFacingError  # noqa: E402
from controlplane.resilience.client import ServiceClient  # noqa: E402
from controlplane.resilience.retry import RetryPolicy  # noqa: E402

# Every retry waits RETRY_WAIT first: a process makes at most sync_seconds / RETRY_WAIT + 1
# retries per sync interval, which bounds the overshoot the parent allows for.
RETRY_WAIT = 0.05


def main(name: str, url: str, calls: int) -> dict[str, object]:
    client = ServiceClient(
        name,
        url,
        # A threshold the test never reaches: only the budget can bound the retries.
        breaker=breaker(name, failure_threshold=1_000_000),
        retry=RetryPolicy(
            max_attempts=3,
            initial_delay=RETRY_WAIT,
            factor=1.0,
            max_delay=RETRY_WAIT,
            jitter="none",
            deadline=10.0,
        ),
    )
    client.breaker.allows()  # the breaker row exists before the start
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    codes: Counter[str] = Counter()
    for _ in range(calls):
        try:
            client.get("/dead")
            codes["ok"] += 1
        except UserFacingError as exc:
            codes[exc.code] += 1
    synced = client.budget.sync(wait=True)  # after any sync of the sharing thread's
    return {"codes": dict(codes), "synced": synced, "shared": client.budget.is_shared}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))), flush=True)
