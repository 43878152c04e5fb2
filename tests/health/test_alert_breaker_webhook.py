"""A breaker opening and closing reaches a real webhook receiver, signed, once each."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from controlplane.breakers.circuit import breaker
from controlplane.health.models import AlertEvent
from tests.breakers.conftest import elapse_cooldown, fail
from tests.health.conftest import ALERT_WORKER, signed, webhook
from tests.resilience.flaky_server import Script

pytestmark = pytest.mark.slow


def wait_requests(script: Script, count: int, seconds: float) -> float:
    """Seconds until the receiver had ``count`` requests (fails past ``seconds``)."""
    started = time.monotonic()
    while len(script.seen) < count:
        assert time.monotonic() - started < seconds, f"{len(script.seen)} of {count} arrived"
        time.sleep(0.02)
    return time.monotonic() - started


def test_it_delivers_one_signed_webhook_when_a_breaker_opens_and_one_when_it_closes(
    fresh_name: str, clean_alerts: None, start_worker: Any, receiver: Any
) -> None:
    url, script = receiver(200)
    webhook(url, events=["breaker.opened", "breaker.closed"])  # nothing a sweep finds elsewhere
    start_worker(**ALERT_WORKER)
    upstream = breaker(fresh_name, failure_threshold=5, cooldown_seconds=60)

    fail(upstream, 5)
    assert wait_requests(script, 1, 2.0) < 2.0
    opened = json.loads(script.seen[0].body)
    assert signed(script.seen[0])
    assert (opened["kind"], opened["subject"], opened["status"]) == (
        "breaker.opened",
        fresh_name,
        "firing",
    )

    elapse_cooldown(fresh_name)
    upstream.call(lambda: "ok")  # the probe that closes it
    wait_requests(script, 2, 2.0)
    closed = json.loads(script.seen[1].body)
    assert signed(script.seen[1])
    assert (closed["kind"], closed["subject"]) == ("breaker.closed", fresh_name)
    assert AlertEvent.objects.get(kind="breaker.opened", subject=fresh_name).status == "resolved"

    time.sleep(1.0)  # the worker sweeps every 0.2 s meanwhile: nothing more may arrive
    assert len(script.seen) == 2
