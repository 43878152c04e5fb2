"""With PostgreSQL unreachable, the retry budget decides from the process's own counts: it
never waits for the database and never raises because of it, and it still bounds retries.

A real Django process whose database does not exist (its listener marks it unreachable)
calls a dead upstream (a real HTTP server on 127.0.0.1 answering 503).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_with_dead_database
from tests.resilience.flaky_server import Script, flaky_server

pytestmark = pytest.mark.slow

CALLS = 20
CHILD = """
import json, time
from controlplane.errors.exceptions import UserFacingError
from controlplane.lib import dbgate
from controlplane.lib.notifications import listener
from controlplane.resilience.client import ServiceClient
from controlplane.resilience.retry import RetryPolicy

listener.ensure_running()
deadline = time.monotonic() + 20
while not dbgate.is_unreachable() and time.monotonic() < deadline:
    time.sleep(0.02)
policy = RetryPolicy(max_attempts=3, initial_delay=0.001, factor=1, max_delay=0.001, jitter="none")
client = ServiceClient("budget-down", "{url}", retry=policy)
codes, slowest = [], 0.0
for _ in range({calls}):
    started = time.monotonic()
    try:
        client.get("/dead")
    except UserFacingError as exc:
        codes.append(exc.code)
    slowest = max(slowest, time.monotonic() - started)
print(json.dumps({{"unreachable": dbgate.is_unreachable(), "codes": codes, "slowest": slowest,
                  "shared": client.budget.is_shared}}))
"""


def test_an_unreachable_database_leaves_the_budget_to_local_counts(tmp_path: Path) -> None:
    script = Script([(503, {})])
    with flaky_server(script) as url:
        answer, _ = run_with_dead_database(
            CHILD.format(url=url, calls=CALLS),
            RETRY_BUDGET_RATIO="0.2",
            RETRY_BUDGET_MIN_PER_WINDOW="2",
            BREAKER_FAILURE_THRESHOLD="1000",  # the local breaker must not stop the calls
            ERROR_SPOOL_PATH=str(tmp_path / "spool.jsonl"),
        )
    assert answer["unreachable"] and not answer["shared"]
    assert answer["slowest"] < 1.0  # nothing waited for the database
    assert len(answer["codes"]) == CALLS  # every call answered with a UserFacingError
    assert "RETRY_BUDGET_EXHAUSTED" in answer["codes"]
    # One process deciding alone: exactly its own budget, 2 + 0.2 x 20 retries at most.
    assert CALLS < script.requests <= CALLS + 2 + 0.2 * CALLS
