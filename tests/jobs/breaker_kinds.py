"""Job kinds for the breaker-wait tests, imported by the tests and by their runworker.

None declares a breakers hook, so an open breaker is met during the attempt (a
CircuitOpenError raised by the handler), not before it: ``test.behind_breaker`` calls
through breaker ``payload["breaker"]``, ``test.client_call`` through provider
``payload["provider"]``'s ServiceClient, ``test.group_call`` through provider group
``payload["group"]``.
"""

from __future__ import annotations

from typing import Any

from controlplane.breakers.circuit import breaker
from controlplane.resilience.failover import client_for_group
from controlplane.resilience.providers import client_for
from jobs.context import JobContext
from jobs.registry import job_handler


@job_handler("test.behind_breaker")
def behind_breaker(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return breaker(payload["breaker"]).call(lambda: {"called": True, "attempt": ctx.attempt})


@job_handler("test.client_call")
def client_call(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """A provider's ServiceClient with no breakers hook: its refusal is met in the attempt."""
    response = client_for(payload["provider"]).get(payload.get("path", "/v1/x"))
    return {"status": response.status_code}


@job_handler("test.group_call")
def group_call(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """A provider group with no breakers hook: a GroupCircuitOpenError in the attempt."""
    result = client_for_group(payload["group"]).get(payload.get("path", "/v1/x"))
    return {"status": result.response.status_code, "provider": result.provider}
