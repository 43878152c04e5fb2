"""A job kind for the breaker-wait tests, imported by the test and by its runworker.

``test.behind_breaker`` calls through breaker ``payload["breaker"]`` and declares no
breakers hook, so an open breaker is met during the attempt (a CircuitOpenError raised
by the handler), not before it.
"""

from __future__ import annotations

from typing import Any

from controlplane.breakers.circuit import breaker
from jobs.context import JobContext
from jobs.registry import job_handler


@job_handler("test.behind_breaker")
def behind_breaker(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return breaker(payload["breaker"]).call(lambda: {"called": True, "attempt": ctx.attempt})
