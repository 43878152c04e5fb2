"""An http.request job to a provider group waits for its breakers only when no answer is
possible: every provider's breaker refuses and the group declares no fallback. With a
fallback, the attempt runs and the fallback answers. A job waiting for a group runs as soon
as any of its breakers permits again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.breakers.circuit import breaker
from controlplane.errors.models import ErrorRecord
from controlplane.resilience import providers
from jobs.actions import create_job
from jobs.maintenance import run_maintenance
from jobs.models import Job
from jobs.tasks import run_job
from tests.jobs import breaker_kinds  # noqa: F401 -- registers test.group_call
from tests.jobs.test_breaker_waits import force_open, reset
from tests.resilience.flaky_server import Script, flaky_server


@pytest.fixture
def two_providers(settings: Any) -> Iterator[tuple[list[str], list[Script]]]:
    scripts = [Script([(200, {"from": "a"})]), Script([(200, {"from": "b"})])]
    suffix = uuid.uuid4().hex[:8]  # breakers outlive a test in this process: fresh names
    names = [f"group-wait-a-{suffix}", f"group-wait-b-{suffix}"]
    providers._clients.clear()
    with flaky_server(scripts[0]) as url_a, flaky_server(scripts[1]) as url_b:
        settings.PROVIDERS = {
            name: {"base_url": url, "mode": "real", "timeout": 2, "client_calls": ["GET /v1/x"]}
            for name, url in zip(names, (url_a, url_b), strict=True)
        }
        for name in names:
            assert breaker(name).state == "closed"  # creates its row for ops to act on
        yield names, scripts
    providers._clients.clear()


def group_job(group: str) -> Job:
    return create_job(kind="http.request", payload={"group": group, "path": "/v1/x"})[0]


def test_a_group_job_waits_when_every_breaker_refuses_and_no_fallback_is_declared(
    clean_jobs: None, two_providers: tuple[list[str], list[Script]], ops_user: Any, settings: Any
) -> None:
    names, scripts = two_providers
    settings.PROVIDER_GROUPS = {"waiters": names}
    for name in names:
        force_open(name, ops_user)
    job = group_job("waiters")
    assert run_job(str(job.id)) == "waiting for group waiters"
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("queued", 0)
    assert (job.waiting_for, job.waiting_breakers) == ("group waiters", names)
    assert [s.requests for s in scripts] == [0, 0]


def test_a_group_job_with_a_fallback_answers_from_it_instead_of_waiting(
    clean_jobs: None, two_providers: tuple[list[str], list[Script]], ops_user: Any, settings: Any
) -> None:
    names, scripts = two_providers
    settings.PROVIDER_GROUPS = {
        "covered": {
            "providers": names,
            "fallback": {"type": "static", "status": 200, "json": {"from": "fallback"}},
        }
    }
    for name in names:
        force_open(name, ops_user)
    job = group_job("covered")
    assert run_job(str(job.id)) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.attempts, job.waiting_for) == ("succeeded", 1, "")
    assert job.result["fallback_used"] is True and job.result["body"] == {"from": "fallback"}
    assert [s.requests for s in scripts] == [0, 0]


def test_a_single_provider_job_still_waits(
    clean_jobs: None, two_providers: tuple[list[str], list[Script]], ops_user: Any
) -> None:
    names, _ = two_providers
    force_open(names[0], ops_user)
    job = create_job(kind="http.request", payload={"provider": names[0], "path": "/v1/x"})[0]
    assert run_job(str(job.id)) == f"waiting for breaker {names[0]}"


@pytest.mark.parametrize(
    ("kind", "when"),
    [("http.request", "checked before the attempt"), ("test.group_call", "during the attempt")],
)
def test_a_reset_of_any_breaker_of_the_group_wakes_the_job(
    clean_jobs: None,
    two_providers: tuple[list[str], list[Script]],
    ops_user: Any,
    settings: Any,
    kind: str,
    when: str,
) -> None:
    names, scripts = two_providers
    settings.PROVIDER_GROUPS = {"waiters": names}
    soon, never = names
    force_open(soon, ops_user, expires_in=20)  # the earliest retry-after the group knows
    force_open(never, ops_user)  # no expiry: no retry-after at all
    records = ErrorRecord.objects.count()
    job = create_job(kind=kind, payload={"group": "waiters", "path": "/v1/x"})[0]
    assert run_job(str(job.id)) == "waiting for group waiters"
    job.refresh_from_db()
    assert (job.status, job.attempts, job.waiting_for) == ("queued", 0, "group waiters")
    assert sorted(job.waiting_breakers) == sorted(names)
    assert when in job.events.last().message
    assert Job.objects.waiting_per_breaker() == {soon: 1, never: 1}
    assert ErrorRecord.objects.count() == records  # a wait, not an error anyone is shown

    assert run_maintenance().woken == 0
    reset(never, ops_user)  # not the breaker whose retry-after set the job's run_after
    assert run_maintenance().woken == 1
    assert run_job(str(job.id)) == "succeeded"
    job.refresh_from_db()
    assert (job.attempts, job.waiting_for, job.waiting_breakers) == (1, "", [])
    assert job.result["provider"] == never
    assert [s.requests for s in scripts] == [0, 1]
