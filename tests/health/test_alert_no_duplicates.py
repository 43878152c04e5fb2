"""Two processes using a breaker (as web processes do) and two workers sweeping the same
breaker history: each change reaches each channel once."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import Breaker, BreakerEvent
from controlplane.health.models import AlertDelivery, AlertEvent
from tests.breakers.conftest import elapse_cooldown
from tests.conftest import PYTHON, REPO, django_child_env
from tests.health.conftest import ALERT_WORKER, signed, webhook

pytestmark = pytest.mark.slow


def test_it_delivers_each_breaker_change_once_per_channel_under_many_processes(
    fresh_name: str, clean_alerts: None, start_worker: Any, receiver: Any
) -> None:
    url_a, script_a = receiver(200)
    url_b, script_b = receiver(200)
    breakers_only = ["breaker.opened", "breaker.closed"]  # nothing a sweep finds elsewhere
    webhook(url_a, name="a", events=breakers_only)
    webhook(url_b, name="b", events=breakers_only)
    start_worker(**ALERT_WORKER)
    start_worker(**ALERT_WORKER)
    breaker(fresh_name, failure_threshold=5, cooldown_seconds=60).allows()  # created, closed

    fail_at = time.time() + 3
    web = [
        subprocess.Popen(
            [PYTHON, "-m", "tests.health.alert_child", fresh_name, str(fail_at)],
            cwd=REPO,
            env=django_child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in web:  # each says "failed" once its failing calls are over
        assert child.stdout is not None
        lines = iter(child.stdout.readline, "")
        assert "failed" in (line.strip() for line in lines), "the child ended early"
    elapse_cooldown(fresh_name)  # no failing call is in flight any more
    for child in web:  # both heal at once
        assert child.stdin is not None
        child.stdin.write("heal\n")
        child.stdin.flush()
    won = 0
    for child in web:
        stdout, stderr = child.communicate(timeout=60)
        assert child.returncode == 0, stderr
        won += json.loads(stdout.strip().splitlines()[-1])["won"]

    states = list(
        BreakerEvent.objects.filter(breaker__name=fresh_name)
        .order_by("generation")
        .values_list("to_state", flat=True)
    )
    assert states == ["open", "half_open", "closed"] and won == 3
    assert Breaker.objects.get(name=fresh_name).state == "closed"

    deadline = time.monotonic() + 5
    while len(script_a.seen) + len(script_b.seen) < 4:
        assert time.monotonic() < deadline, (len(script_a.seen), len(script_b.seen))
        time.sleep(0.02)
    time.sleep(1.0)  # several sweeps of both workers: still nothing more may arrive
    for script in (script_a, script_b):
        # Each delivery is its own job, run by either worker: they may arrive in either
        # order (receivers order by the body's created_at); each exactly once.
        kinds = sorted(json.loads(seen.body)["kind"] for seen in script.seen)
        assert kinds == ["breaker.closed", "breaker.opened"]
        assert all(signed(seen) for seen in script.seen)
    assert AlertEvent.objects.filter(subject=fresh_name).count() == 2
    assert AlertDelivery.objects.filter(status="sent", event__subject=fresh_name).count() == 4
