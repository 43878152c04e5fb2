"""Breakers shared by real processes through PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.circuit import breaker
from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.models import Breaker, BreakerEvent
from tests.breakers.conftest import elapse_cooldown, execute, fail
from tests.conftest import PYTHON, REPO, django_child_env

pytestmark = pytest.mark.slow


def spawn(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "tests.breakers.child", *args],
        cwd=REPO,
        env=django_child_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def results(children: list[subprocess.Popen]) -> list[dict[str, Any]]:
    out = []
    for child in children:
        stdout, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_one_transition_per_generation_under_contention(fresh_name: str) -> None:
    breaker(fresh_name, failure_threshold=5, cooldown_seconds=60).allows()
    start_at = time.time() + 3
    children = [spawn("hammer", fresh_name, str(start_at)) for _ in range(8)]
    won = sum(r["won"] for r in results(children))

    assert won == 1
    row = Breaker.objects.get(name=fresh_name)
    assert (row.state, row.generation) == ("open", 1)
    assert list(BreakerEvent.objects.filter(breaker=row).values_list("generation", "to_state")) == [
        (1, "open")
    ]


def test_half_open_admits_only_the_configured_probes_across_processes(fresh_name: str) -> None:
    b = breaker(fresh_name, failure_threshold=1, half_open_max_probes=2)
    fail(b, 1)
    elapse_cooldown(fresh_name)
    start_at = time.time() + 3
    children = [spawn("probe", fresh_name, str(start_at)) for _ in range(8)]
    assert sum(r["granted"] for r in results(children)) == 2
    assert Breaker.objects.get(name=fresh_name).state == "half_open"


def test_a_killed_probers_lease_expires_and_is_reclaimed(fresh_name: str) -> None:
    b = breaker(fresh_name, failure_threshold=1, half_open_max_probes=1, probe_lease_seconds=30)
    fail(b, 1)
    elapse_cooldown(fresh_name)
    prober = spawn("probe_and_hang", fresh_name)
    assert json.loads(prober.stdout.readline()) == {"granted": 1}
    prober.kill()
    prober.wait()

    with pytest.raises(CircuitOpenError):
        b.runtime.acquire()  # its lease still holds the only probe slot
    execute(  # inject time: the dead prober's lease ran out
        "UPDATE breakers_breaker SET probe_leases = "
        "ARRAY(SELECT t - interval '31 s' FROM unnest(probe_leases) t) WHERE name = %s",
        [fresh_name],
    )
    permit = b.runtime.acquire()
    assert permit.probe
    b.runtime.success(permit)
    assert Breaker.objects.get(name=fresh_name).state == "closed"


@pytest.mark.parametrize(("action", "until"), [("force_open", "refused"), ("reset", "allowed")])
def test_an_override_in_one_process_is_obeyed_by_another_within_a_second(
    fresh_name: str, ops_user: Any, action: str, until: str
) -> None:
    b = breaker(fresh_name, failure_threshold=1, cooldown_seconds=600)
    if action == "reset":
        fail(b, 1)  # open for ten minutes: only the reset can let the watcher through
    else:
        b.allows()
    # A long snapshot TTL in the child: only NOTIFY can tell it in time.
    watcher = spawn("watch", fresh_name, until, "10", BREAKER_SNAPSHOT_TTL="600")
    assert json.loads(watcher.stdout.readline()) == {"ready": True}
    changed_at = time.time()
    override_breaker(name=fresh_name, action=action, reason="drill", actor=ops_user)
    seen_at = results([watcher])[0]["changed_at"]
    assert seen_at is not None
    assert seen_at - changed_at < 1.0


def test_a_clients_quota_holds_when_its_processes_create_breakers_at_once(
    fresh_name: str, client_user: Any
) -> None:
    start_at = time.time() + 3
    children = [
        spawn(
            "claim",
            f"{fresh_name}-{n}",
            str(client_user.pk),
            "4",
            str(start_at),
            BREAKER_MAX_PER_CLIENT="6",
        )
        for n in range(4)
    ]
    created = sum(r["created"] for r in results(children))
    assert created == Breaker.objects.filter(owner=client_user).count() == 6
