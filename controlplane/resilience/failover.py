"""Calls to a provider group: failover by health, then the group's declared fallback.

    result = client_for_group("llm").request("POST", "/v1/chat", json={...})
    result.response          # httpx.Response: a provider's, or the fallback's
    result.provider          # who answered (None when the fallback did)
    result.summary()         # provider, tried (skipped / failed, and why), fallback_used, ...

Providers are tried healthiest first (healthy, unknown, degraded, then unhealthy, or
never with ``try_unhealthy: false``), each through its own ServiceClient: its own
breaker, timeout and attempts. The next provider is tried only after a failure that is
the provider's (network, timeout, 408, 429, 5xx, open breaker); any other 4xx means the
request is wrong and ends the call. A POST or PATCH carries one idempotency key on every
attempt at every provider.

When no provider answers: the group's fallback (static, last_good, mock) answers and says
so. Without one (or with no last good answer young enough):
``PROVIDER_GROUP_CIRCUIT_OPEN`` (a CircuitOpenError) when every breaker refused and no
call was made, so a job waits for the first breaker to reopen; otherwise
``PROVIDER_GROUP_UNAVAILABLE``.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings

from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.errors.exceptions import ServiceUnavailableError, UserFacingError
from controlplane.errors.recording import record_error
from controlplane.resilience import last_good
from controlplane.resilience.client import NON_IDEMPOTENT, waited_for
from controlplane.resilience.groups import Fallback, GroupConfig, group_config
from controlplane.resilience.providers import by_health, client_for, mock_handler

logger = logging.getLogger("controlplane.providers")

# Failures that say "this provider, now" rather than "this request": worth another provider.
FAILOVER_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Passed:
    """A provider that did not answer: skipped (no call made) or failed, and why."""

    provider: str
    outcome: str  # "skipped" | "failed"
    reason: str = ""  # skipped: "breaker open" | "unhealthy"
    code: str = ""  # failed: the provider's error code
    attempts: int = 0
    retry_after: float | None = None

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"provider": self.provider, "outcome": self.outcome}
        if self.outcome == "skipped":
            entry["reason"] = self.reason
            if self.retry_after is not None:
                entry["retry_after"] = self.retry_after
        else:
            entry.update(code=self.code, attempts=self.attempts)
        return entry


@dataclass(frozen=True)
class GroupResult:
    group: str
    response: httpx.Response
    provider: str | None  # None: the fallback answered
    tried: tuple[Passed, ...] = ()
    fallback: str | None = None  # the fallback's type when it answered
    fallback_reason: str | None = None
    fallback_age_seconds: float | None = None  # last_good: how old the answer is

    @property
    def fallback_used(self) -> bool:
        return self.fallback is not None

    def summary(self) -> dict[str, Any]:
        """What a job result (or a log line) says about how the call was served."""
        out: dict[str, Any] = {
            "group": self.group,
            "provider": self.provider,
            "tried": [p.as_dict() for p in self.tried],
            "fallback_used": self.fallback_used,
        }
        if self.fallback_used:
            out.update(fallback=self.fallback, fallback_reason=self.fallback_reason)
            if self.fallback_age_seconds is not None:
                out["fallback_age_seconds"] = self.fallback_age_seconds
        return out


class ProviderGroupUnavailableError(ServiceUnavailableError):
    """No provider of the group answered, and no fallback could."""

    code = "PROVIDER_GROUP_UNAVAILABLE"
    default_message = (
        "None of the services that can handle this request is available right now; "
        "please retry later."
    )


class GroupCircuitOpenError(CircuitOpenError):
    """Every provider's breaker refused and no call was made: wait for the first to reopen
    (``breaker_name`` and ``retry_after`` are that breaker's)."""

    code = "PROVIDER_GROUP_CIRCUIT_OPEN"

    def __init__(self, group: str, refusals: list[CircuitOpenError]) -> None:
        first = min(refusals, key=lambda e: math.inf if e.retry_after is None else e.retry_after)
        super().__init__(first.breaker_name, first.retry_after, first.breaker_state)
        self.code = type(self).code
        self.refusals = list(refusals)  # a job waits until any of them permits
        self.technical_message = f"every breaker of provider group {group!r} is open: " + ", ".join(
            f"{e.breaker_name} ({e.breaker_state})" for e in refusals
        )
        self.metadata.update(group=group, breakers=[e.breaker_name for e in refusals])


def fails_over(error: UserFacingError) -> bool:
    """Is this failure the provider's (try the next one) rather than the request's?"""
    return error.retryable or getattr(error, "upstream_status", None) in FAILOVER_STATUSES


@dataclass
class _Call:
    """One logical call to a group, as it goes."""

    config: GroupConfig
    method: str
    url: str
    kwargs: dict[str, Any]
    tried: list[Passed] = field(default_factory=list)
    refusals: list[CircuitOpenError] = field(default_factory=list)
    failures: list[tuple[str, UserFacingError]] = field(default_factory=list)

    def reason(self) -> str:
        """Why the fallback answers: machine-readable, for the job result."""
        if all(p.reason == "breaker open" for p in self.tried):
            return "breakers_open"
        if all(p.outcome == "failed" for p in self.tried):
            return "providers_failed"
        return "providers_unavailable"


class GroupClient:
    """A ServiceClient-like client for a provider group (see the module docstring)."""

    def __init__(self, group: str) -> None:
        group_config(group)  # KeyError / GroupConfigError now, not at the first call
        self.group = group

    def request(
        self,
        method: str,
        url: str,
        *,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> GroupResult:
        call = _Call(group_config(self.group), method.upper(), url, kwargs)
        if call.method in NON_IDEMPOTENT:
            # One key for the logical call: every attempt, every provider.
            idempotency_key = idempotency_key or str(uuid.uuid4())
        for provider, health in by_health(list(call.config.providers)):
            if health == "unhealthy" and not call.config.try_unhealthy:
                call.tried.append(Passed(provider, "skipped", reason="unhealthy"))
                continue
            response = self._try(call, provider, idempotency_key)
            if response is not None:
                self._remember(call, provider, response)
                if call.tried:
                    logger.info(
                        "provider group %s served by %s after %s",
                        self.group,
                        provider,
                        [p.as_dict() for p in call.tried],
                    )
                return GroupResult(self.group, response, provider, tuple(call.tried))
        return self._fallback(call)

    def get(self, url: str, **kwargs: Any) -> GroupResult:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> GroupResult:
        return self.request("POST", url, **kwargs)

    def _try(self, call: _Call, provider: str, key: str | None) -> httpx.Response | None:
        """``provider``'s answer, or None after noting why there is none. A failure that
        is the request's is recorded and raised: no other provider would answer better."""
        client = client_for(provider)
        try:
            return client.request(
                call.method, call.url, record=False, idempotency_key=key, **call.kwargs
            )
        except CircuitOpenError as exc:
            if not exc.context.get("attempts"):
                call.refusals.append(exc)
                call.tried.append(
                    Passed(provider, "skipped", reason="breaker open", retry_after=exc.retry_after)
                )
                return None
            error: UserFacingError = exc  # opened between attempts: it failed
        except UserFacingError as exc:
            error = exc
            if not fails_over(error):
                error.context["group"] = self.group
                record_error(error, service=provider, breaker_name=client.breaker.name)
                raise
        call.failures.append((provider, error))
        call.tried.append(
            Passed(provider, "failed", code=error.code, attempts=error.context.get("attempts", 1))
        )
        return None

    def _remember(self, call: _Call, provider: str, response: httpx.Response) -> None:
        fallback = call.config.fallback
        if fallback and fallback.type == "last_good" and 200 <= response.status_code < 300:
            key, path = last_good.request_key(call.method, call.url, call.kwargs)
            last_good.remember(
                group=self.group,
                key=key,
                path=path,
                method=call.method,
                provider=provider,
                response=response,
            )

    def _fallback(self, call: _Call) -> GroupResult:
        fallback = call.config.fallback
        if fallback is None and settings.PROVIDER_FALLBACK_TO_MOCK:
            fallback = Fallback("mock")
        missing = "none declared"
        if fallback is not None:
            answered = self._answer_from(fallback, call)
            if answered is not None:
                logger.warning(
                    "provider group %s answered from its %s fallback (%s): %s",
                    self.group,
                    fallback.type,
                    answered.fallback_reason,
                    [p.as_dict() for p in call.tried],
                )
                return answered
            missing = f"{fallback.type}: nothing to answer with"
            if fallback.type == "last_good":
                missing = f"last_good: none younger than {fallback.max_age_seconds:g} s"
        tried = [p.as_dict() for p in call.tried]
        if call.refusals and not call.failures:
            error: UserFacingError = GroupCircuitOpenError(self.group, call.refusals)
        else:
            last = call.failures[-1][1] if call.failures else None
            error = ProviderGroupUnavailableError(
                technical_message=f"no provider of group {self.group!r} answered "
                f"(fallback {missing}): {tried}",
                metadata={"group": self.group, "tried": tried, "fallback": missing},
                original=last,
                retry_after=getattr(last, "retry_after", None),
            )
        error.context.update(
            group=self.group,
            tried=tried,
            failures=[
                {"provider": p, "code": e.code, "message": e.technical_message, **e.context}
                for p, e in call.failures
            ],
        )
        if not waited_for(error):
            record_error(error, service=self.group)
        raise error

    def _answer_from(self, fallback: Fallback, call: _Call) -> GroupResult | None:
        request = httpx.Request(call.method, call.url)
        reason = call.reason()
        if fallback.type == "static":
            response = httpx.Response(
                fallback.status,
                content=json.dumps(fallback.json).encode(),  # a declared null stays JSON null
                headers={"content-type": "application/json"},
                request=request,
            )
            return GroupResult(self.group, response, None, tuple(call.tried), "static", reason)
        if fallback.type == "last_good":
            key, _ = last_good.request_key(call.method, call.url, call.kwargs)
            found = last_good.recall(
                group=self.group,
                key=key,
                method=call.method,
                url=call.url,
                max_age_seconds=fallback.max_age_seconds,
            )
            if found is None:
                return None
            return GroupResult(
                self.group,
                found.response,
                None,
                tuple(call.tried),
                "last_good",
                reason,
                found.age_seconds,
            )
        if settings.ENVIRONMENT == "production":
            return None  # refused at start-up (E002); never mock data in production
        mock = httpx.Client(transport=httpx.MockTransport(mock_handler(f"{self.group}-mock")))
        with mock:
            response = mock.request(call.method, f"http://{self.group}.mock{call.url}")
        return GroupResult(self.group, response, None, tuple(call.tried), "mock", reason)


def client_for_group(group: str) -> GroupClient:
    """The client for provider group ``group`` (KeyError if it is not configured)."""
    return GroupClient(group)


def call_group(group: str, method: str, url: str, **kwargs: Any) -> GroupResult:
    """One call to ``group``: ``client_for_group(group).request(method, url, ...)``."""
    return client_for_group(group).request(method, url, **kwargs)
