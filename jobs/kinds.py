"""The built-in job kinds: demo.sleep, http.request, and the ops-only lookups.warm and
lookups.backfill. Registered when JobsConfig.ready() imports this module."""

from __future__ import annotations

import re
import time
from typing import Any

from django.conf import settings

from controlplane.errors.exceptions import ForbiddenError, ServiceUnavailableError, ValidationError
from controlplane.resilience.failover import client_for_group
from controlplane.resilience.groups import group_config
from controlplane.resilience.providers import client_calls, client_for, client_may_call
from jobs.backfill import backfill_micro_uuids
from jobs.context import JobContext
from jobs.models import WAITING_FOR_GROUP
from jobs.registry import Breakers, job_handler
from lookups.resolver import get_lookups
from lookups.warming import warm_everywhere


class DemoFailure(ServiceUnavailableError):
    code = "DEMO_TRANSIENT_FAILURE"


@job_handler("demo.sleep")
def demo_sleep(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Sleep ``seconds`` in 100 ms steps with a checkpoint and progress at each; fail
    retryably on the first ``fail_times`` attempts."""
    seconds = float(payload.get("seconds", 1.0))
    fail_times = int(payload.get("fail_times", 0))
    if ctx.attempt <= fail_times:
        raise DemoFailure(f"demo failure on attempt {ctx.attempt} of {fail_times} planned")
    steps = max(1, round(seconds / 0.1)) if seconds > 0 else 0
    started = time.monotonic()
    for step in range(steps):
        ctx.checkpoint()
        ctx.progress(100 * step / steps, f"step {step + 1} of {steps}")
        ctx.sleep(0.1)
    ctx.checkpoint()
    return {"slept": round(time.monotonic() - started, 3), "attempt": ctx.attempt}


def _validate_http_request(payload: dict[str, Any]) -> None:
    """Only configured providers (or provider groups), only the calls each allows clients
    (its "client_calls", by default just its health path; for a group, every member must
    allow it): a job must not make the worker fetch arbitrary URLs (cloud metadata, loopback
    services), nor reach any path of a provider's API with this service's credentials, and
    hand the answer back."""
    if "provider" in payload and "group" in payload:
        raise ValidationError(
            "payload takes provider (one upstream) or group (a provider group with "
            "failover), not both.",
            code="PROVIDER_AND_GROUP_CONFLICT",
        )
    if "group" in payload:
        group = payload["group"]
        if not isinstance(group, str) or group not in settings.PROVIDER_GROUPS:
            raise ValidationError(
                "payload.group must name a configured provider group.",
                code="UNKNOWN_PROVIDER_GROUP",
                metadata={"groups": sorted(settings.PROVIDER_GROUPS)},
            )
        members = list(group_config(group).providers)
    else:
        provider = payload.get("provider")
        if not isinstance(provider, str) or provider not in settings.PROVIDERS:
            raise ValidationError(
                "payload.provider must name a configured provider (or payload.group a "
                "provider group).",
                code="UNKNOWN_PROVIDER",
                metadata={
                    "providers": sorted(settings.PROVIDERS),
                    "groups": sorted(settings.PROVIDER_GROUPS),
                },
            )
        members = [provider]
    path = payload.get("path", "/")
    if not isinstance(path, str) or not _SAFE_PATH.fullmatch(path) or _DOT_SEGMENT.search(path):
        raise ValidationError("payload.path must be a path such as /v1/parse.", code="INVALID_PATH")
    method = str(payload.get("method", "GET")).upper()
    if method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        raise ValidationError("payload.method is not an HTTP method.", code="INVALID_METHOD")
    for provider in members:
        if not client_may_call(provider, method, path):
            raise ForbiddenError(
                f"{method} {path.split('?', 1)[0]} is not among the calls provider "
                f"{provider!r} allows clients.",
                code="PROVIDER_CALL_FORBIDDEN",
                metadata={"provider": provider, "allowed": client_calls(provider)},
            )


def breakers_for_payload(payload: dict[str, Any]) -> list[str] | Breakers:
    """The breakers an http.request job calls through; the job waits before an attempt only
    while none of them permits a call. A group with a declared fallback (or the development
    mock) has an answer even then: its attempt runs, and waits only if that fallback cannot
    answer (the group raises a CircuitOpenError)."""
    group = payload.get("group")
    if isinstance(group, str) and group in settings.PROVIDER_GROUPS:
        if group_config(group).fallback is not None or settings.PROVIDER_FALLBACK_TO_MOCK:
            return []
        names = [client_for(provider).breaker.name for provider in group_config(group).providers]
        return Breakers(names, f"{WAITING_FOR_GROUP}{group}")
    provider = payload.get("provider")
    if isinstance(provider, str) and provider in settings.PROVIDERS:
        return [client_for(provider).breaker.name]
    return []


# One leading slash, then no "//", no backslash, no fragment; dot segments (also %2e-encoded)
# could climb out of the allowed path once the upstream normalises it.
_SAFE_PATH = re.compile(r"/(?!/)[^\\#\s]*")
_DOT_SEGMENT = re.compile(r"(?i)(?:^|/)(?:\.|%2e){1,2}(?:/|\?|$)|//")


@job_handler("http.request", validate=_validate_http_request, breakers=breakers_for_payload)
def http_request(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """A call to a configured provider through its ServiceClient (breaker + retries), or to a
    provider group (failover, then its fallback): payload ``{"provider" | "group", "method",
    "path", "json"?}``. A POST or PATCH sends the job id as its idempotency key: the same on
    every attempt of the job, so the upstream can tell a retry from a new call."""
    _validate_http_request(payload)
    method = str(payload.get("method", "GET")).upper()
    path = payload.get("path", "/")
    ctx.checkpoint()
    served: dict[str, Any] = {}
    if "group" in payload:
        result = client_for_group(str(payload["group"])).request(
            method, path, json=payload.get("json"), idempotency_key=ctx.job_id
        )
        response, served = result.response, result.summary()
    else:
        client = client_for(str(payload["provider"]))
        response = client.request(
            method, path, json=payload.get("json"), idempotency_key=ctx.job_id
        )
    ctx.progress(100, "done")
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:10_000]
    return {"status": response.status_code, "body": body, **served}


@job_handler("lookups.warm", groups=("ops",))
def lookups_warm(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    result = warm_everywhere(get_lookups(), slugs=payload.get("slugs") or None)
    return {
        "reports": [{"process": r["process"], "warmed": r["warmed"]} for r in result["reports"]]
    }


@job_handler("lookups.backfill", groups=("ops",))
def lookups_backfill(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    def progress(done: int, total: int) -> None:
        ctx.progress(100 * done / total if total else 100, f"{done} of {total} jobs")
        ctx.checkpoint()

    report = backfill_micro_uuids(batch_size=int(payload.get("batch_size", 500)), progress=progress)
    return report
