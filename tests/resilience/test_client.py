"""ServiceClient against a real flaky HTTP server: retries, breaker, fail fast, probe, recovery."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import Breaker, BreakerEvent
from controlplane.errors.exceptions import UserFacingError
from controlplane.errors.models import ErrorRecord
from controlplane.resilience.client import ServiceClient
from controlplane.resilience.retry import RetryPolicy
from tests.breakers.conftest import elapse_cooldown
from tests.resilience.flaky_server import Script, flaky_server

NO_WAIT = {"initial_delay": 0.01, "max_delay": 0.02, "jitter": "none", "deadline": 10}


def test_retries_open_fail_fast_probe_and_recover(fresh_name: str) -> None:
    script = Script([(500, {})] * 5 + [(200, {})])
    delays: list[float] = []
    with flaky_server(script) as url:
        client = ServiceClient(
            fresh_name,
            url,
            breaker=breaker(fresh_name, failure_threshold=3, cooldown_seconds=60),
            retry=RetryPolicy(max_attempts=2, **NO_WAIT),
            on_retry=lambda attempt, exc, delay: delays.append(delay),
        )
        code = fresh_name.upper().replace("-", "_")

        # 1: two attempts, both 500: the retry happened, the breaker counted 2.
        with pytest.raises(UserFacingError) as first:
            client.get("/work")
        assert first.value.code == f"{code}_SERVER_ERROR"
        assert (script.requests, delays) == (2, [0.01])

        # 2: the third failure opens the breaker; the retry is refused without a request.
        with pytest.raises(UserFacingError) as second:
            client.get("/work")
        assert second.value.code == f"{code}_CIRCUIT_OPEN"
        assert script.requests == 3
        assert Breaker.objects.get(name=fresh_name).state == "open"

        # 3: open: fails fast, the upstream sees nothing.
        with pytest.raises(UserFacingError) as third:
            client.get("/work")
        assert third.value.code == f"{code}_CIRCUIT_OPEN"
        assert third.value.http_status == 503
        assert third.value.retry_after > 50
        assert script.requests == 3

        # 4: cooldown over: one probe goes through, fails (500) and re-opens.
        elapse_cooldown(fresh_name)
        with pytest.raises(UserFacingError):
            client.get("/work")
        assert script.requests == 4
        assert Breaker.objects.get(name=fresh_name).state == "open"

        # 5: next probe: upstream recovered (after one more 500) -> closed.
        elapse_cooldown(fresh_name)
        with pytest.raises(UserFacingError):
            client.get("/work")  # request 5 is the last 500
        elapse_cooldown(fresh_name)
        assert client.get("/work").json()["status"] == 200
        assert Breaker.objects.get(name=fresh_name).state == "closed"

    transitions = list(
        BreakerEvent.objects.filter(breaker__name=fresh_name)
        .order_by("generation")
        .values_list("from_state", "to_state")
    )
    assert transitions == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    records = ErrorRecord.objects.filter(service=fresh_name).order_by("created_at")
    assert records.count() == 5
    first_record = records.first()
    assert first_record.code == f"{code}_SERVER_ERROR"
    assert (first_record.breaker_name, first_record.breaker_state) == (fresh_name, "closed")
    assert first_record.context["upstream"]["status"] == 500
    assert "tok_live_123" not in str(first_record.context)  # the upstream body was scrubbed
    assert {r.breaker_state for r in records[1:]} <= {"open", "forced_open"}


def test_429_with_retry_after_is_honoured(fresh_name: str) -> None:
    script = Script([(429, {"Retry-After": "1"}), (200, {})])
    delays: list[float] = []
    with flaky_server(script) as url:
        client = ServiceClient(
            fresh_name,
            url,
            breaker=breaker(fresh_name, failure_threshold=5),
            retry=RetryPolicy(max_attempts=3, jitter="none", initial_delay=0.01, retry_after_cap=5),
            on_retry=lambda attempt, exc, delay: delays.append(delay),
        )
        assert client.get("/limited").status_code == 200
    assert delays == [1.0]
    assert script.requests == 2


def test_a_4xx_is_not_retried_and_does_not_count(fresh_name: str) -> None:
    script = Script([(404, {})])
    with flaky_server(script) as url:
        client = ServiceClient(
            fresh_name,
            url,
            breaker=breaker(fresh_name, failure_threshold=1),
            retry=RetryPolicy(max_attempts=3, **NO_WAIT),
        )
        with pytest.raises(UserFacingError) as error:
            client.get("/missing")
    assert error.value.code.endswith("_UNEXPECTED_ERROR")
    assert script.requests == 1
    assert Breaker.objects.get(name=fresh_name).state == "closed"


def test_network_errors_are_retried_and_mapped(fresh_name: str) -> None:
    client = ServiceClient(
        fresh_name,
        "http://127.0.0.1:9",
        breaker=breaker(fresh_name, failure_threshold=10),
        retry=RetryPolicy(max_attempts=2, **NO_WAIT),
        timeout=1,
    )
    with pytest.raises(UserFacingError) as error:
        client.get("/")
    assert error.value.code.endswith("_NETWORK_ERROR")
    assert error.value.retryable
    assert Breaker.objects.get(name=fresh_name).consecutive_failures == 2


def test_the_async_client(fresh_name: str) -> None:
    script = Script([(503, {}), (200, {})])
    with flaky_server(script) as url:
        client = ServiceClient(
            fresh_name,
            url,
            breaker=breaker(fresh_name),
            retry=RetryPolicy(max_attempts=2, **NO_WAIT),
        )
        response = asyncio.run(client.arequest("GET", "/async"))
    assert response.status_code == 200
    assert script.requests == 2


def test_a_retry_refused_by_the_breaker_keeps_what_the_upstream_said(fresh_name: str) -> None:
    # Flapping drill: a call whose 500 opened the breaker was recorded only as
    # CIRCUIT_OPEN; support could not see the upstream's answer.
    script = Script([(500, {})] * 3)
    with flaky_server(script) as url:
        client = ServiceClient(
            fresh_name,
            url,
            breaker=breaker(fresh_name, failure_threshold=1, cooldown_seconds=60),
            retry=RetryPolicy(max_attempts=3, **NO_WAIT),
        )
        with pytest.raises(UserFacingError) as refused:
            client.get("/work")
    assert refused.value.code.endswith("_CIRCUIT_OPEN")
    assert script.requests == 1
    context = ErrorRecord.objects.get(support_id=refused.value.support_id).context
    (earlier,) = context["earlier_attempts"]
    assert earlier["code"].endswith("_SERVER_ERROR")
    assert earlier["upstream"]["status"] == 500
