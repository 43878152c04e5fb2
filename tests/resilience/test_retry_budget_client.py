"""ServiceClient retries spend the upstream's retry budget; a refused retry fails fast with
RETRY_BUDGET_EXHAUSTED, recorded like any upstream error, keeping the failure it did not
retry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from controlplane.breakers.circuit import breaker
from controlplane.errors.exceptions import UserFacingError
from controlplane.errors.models import ErrorRecord
from controlplane.resilience.budget import RetryBudget, budget_for
from controlplane.resilience.client import ServiceClient
from controlplane.resilience.models import RetryBudgetBucket
from controlplane.resilience.retry import RetryPolicy
from tests.resilience.flaky_server import Script, flaky_server

NO_WAIT = {"initial_delay": 0.01, "max_delay": 0.02, "jitter": "none", "deadline": 10}


def client_for_test(name: str, url: str, **budget: Any) -> ServiceClient:
    return ServiceClient(
        name,
        url,
        breaker=breaker(name, failure_threshold=1000),
        retry=RetryPolicy(max_attempts=3, **NO_WAIT),
        budget=RetryBudget.from_settings(name, **budget),
    )


def test_a_refused_retry_fails_fast_and_is_recorded(fresh_name: str) -> None:
    script = Script([(503, {})])
    code = fresh_name.upper().replace("-", "_")
    with flaky_server(script) as url:
        client = client_for_test(fresh_name, url, ratio=0.0, floor=2)
        with pytest.raises(UserFacingError) as spent:
            client.get("/work")  # 1 + 2 retries: the floor, spent
        assert spent.value.code == f"{code}_SERVER_ERROR"
        assert script.requests == 3

        started = time.monotonic()
        with pytest.raises(UserFacingError) as refused:
            client.get("/work")
        assert time.monotonic() - started < 0.5  # no backoff wait before the refusal
        assert script.requests == 4  # the first attempt went out; its retry did not

    error = refused.value
    assert (error.code, error.http_status, error.retryable) == ("RETRY_BUDGET_EXHAUSTED", 503, True)
    assert error.retry_after is not None and error.retry_after > 0
    assert error.message.endswith(f"(Reference: {error.support_id})")
    record = ErrorRecord.objects.get(support_id=error.support_id)
    assert (record.code, record.service, record.breaker_name, record.breaker_state) == (
        "RETRY_BUDGET_EXHAUSTED",
        fresh_name,
        fresh_name,
        "closed",
    )
    assert "not retried: HTTPStatusError" in record.technical_message
    refused_failure = record.context["refused_failure"]
    assert refused_failure["code"] == f"{code}_SERVER_ERROR"
    assert refused_failure["upstream"]["status"] == 503
    assert record.context["retry_budget"]["retries"] == 2
    assert record.context["retry_budget"]["first_attempts"] == 2


def test_refusals_reach_the_shared_counts(fresh_name: str) -> None:
    script = Script([(503, {})])
    with flaky_server(script) as url:
        client = client_for_test(fresh_name, url, ratio=0.0, floor=1, sync_seconds=0.01)
        for _ in range(3):
            with pytest.raises(UserFacingError):
                client.get("/work")
            time.sleep(0.02)  # past the sync interval: each call's counts are synced
        client.budget.sync()
    assert script.requests == 4  # the floor's one retry in the first call, then none
    totals = RetryBudgetBucket.objects.filter(upstream=fresh_name).totals_by_upstream()
    assert totals[fresh_name] == {"first_attempts": 3, "retries": 1, "refused": 3}


def test_the_async_client_spends_the_same_budget(fresh_name: str) -> None:
    script = Script([(503, {})])
    with flaky_server(script) as url:
        client = client_for_test(fresh_name, url, ratio=0.0, floor=1)

        async def twice() -> list[str]:
            codes = []
            for _ in range(2):
                try:
                    await client.arequest("GET", "/async")
                except UserFacingError as exc:
                    codes.append(exc.code)
            return codes

        codes = asyncio.run(twice())
    assert codes[1] == "RETRY_BUDGET_EXHAUSTED"
    assert script.requests == 3  # 1 + 1 retry (the floor), then 1 with its retry refused


def test_every_service_client_has_its_upstreams_budget(fresh_name: str) -> None:
    client = ServiceClient(fresh_name, "http://127.0.0.1:9")
    assert client.budget is budget_for(fresh_name)
    assert ServiceClient(fresh_name, "http://127.0.0.1:9").budget is client.budget
