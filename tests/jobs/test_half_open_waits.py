"""Many jobs waiting for one breaker do not stampede it while it is half-open: maintenance
wakes no more of them than it has free probe slots, jobs that come due while every slot is
taken wait for the probe (until its lease could end) without a claim or an error record, and
all of them run once the probe closes the breaker. Each pass costs a bounded number of
claims, events and records, whatever the number of waiting jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from controlplane.breakers.circuit import breaker
from controlplane.breakers.registry import registry as breaker_registry
from controlplane.errors.models import ErrorRecord
from jobs.actions import create_job
from jobs.maintenance import run_maintenance
from jobs.models import Job, JobEvent
from jobs.tasks import run_job
from tests.breakers.conftest import elapse_cooldown, fail, fresh_name  # noqa: F401
from tests.jobs import breaker_kinds  # noqa: F401 -- registers test.client_call
from tests.jobs.test_breaker_waits import force_open, http_job, upstream  # noqa: F401
from tests.resilience.flaky_server import Script

WAITERS = 20


@dataclass
class Pass:
    woken: int
    claims: int
    events: int
    records: int
    requests: int


def counts(script: Script) -> tuple[int, int, int, int]:
    claims = JobEvent.objects.filter(to_status="running").count()
    return claims, JobEvent.objects.count(), ErrorRecord.objects.count(), script.requests


def one_pass(script: Script) -> Pass:
    """A maintenance pass, then a worker run of every job it made due (as django-q2 would)."""
    before = counts(script)
    woken = run_maintenance().woken
    due = Job.objects.filter(status="queued", run_after__lte=timezone.now()).order_by("run_after")
    for job_id in list(due.values_list("id", flat=True)):
        run_job(str(job_id))
    after = counts(script)
    return Pass(woken, *(a - b for a, b in zip(after, before, strict=True)))


def waiting_jobs(name: str) -> list[Job]:
    """WAITERS jobs waiting for breaker ``name``, opened by failures (cooling down 60 s)."""
    fail(breaker(name), 5)
    jobs = [http_job(name) for _ in range(WAITERS)]
    for job in jobs:
        assert run_job(str(job.id)) == f"waiting for breaker {name}"
    return jobs


def test_a_half_open_breaker_wakes_no_more_jobs_than_its_probe_slots(
    clean_jobs: None,
    upstream: tuple[str, Script],  # noqa: F811
) -> None:
    name, script = upstream
    waiting_jobs(name)
    elapse_cooldown(name)  # the next call probes; the jobs' own retry-after is a minute away

    first = one_pass(script)
    assert (first.woken, first.claims, first.requests) == (1, 1, 1)  # one probe, and it passed
    assert breaker(name).state == "closed"
    rest = one_pass(script)
    assert (rest.woken, rest.claims, rest.requests) == (WAITERS - 1, WAITERS - 1, WAITERS - 1)
    assert rest.records == 0
    assert set(Job.objects.values_list("status", "attempts")) == {("succeeded", 1)}


def test_jobs_due_while_the_probe_is_out_wait_for_it_without_claims_or_records(
    clean_jobs: None,
    upstream: tuple[str, Script],  # noqa: F811
) -> None:
    name, script = upstream
    jobs = waiting_jobs(name)
    elapse_cooldown(name)
    runtime = breaker_registry.get(name)
    probe = runtime.acquire()  # another process's call is the probe, still in flight
    assert probe.probe
    with connection.cursor() as cursor:  # the minute passes: every job is due at once
        cursor.execute("UPDATE jobs_job SET run_after = now()")

    passes = [one_pass(script) for _ in range(3)]
    # Each job looks once, sees the probe's slot taken and waits for its lease (30 s)...
    assert passes[0] == Pass(woken=0, claims=0, events=WAITERS, records=0, requests=0)
    # ... and then nothing at all happens while the probe is out.
    assert passes[1] == passes[2] == Pass(woken=0, claims=0, events=0, records=0, requests=0)
    for job in Job.objects.all():
        assert (job.status, job.attempts, job.waiting_for) == ("queued", 0, f"breaker {name}")
        assert (job.run_after - timezone.now()).total_seconds() > 25
        assert "half_open" in job.events.last().message

    runtime.success(probe)  # the probe answered: closed, and every waiting job runs
    done = one_pass(script)
    assert (done.woken, done.claims, done.records, done.requests) == (WAITERS, WAITERS, 0, WAITERS)
    assert {(j.status, j.attempts) for j in Job.objects.filter(pk__in=[j.pk for j in jobs])} == {
        ("succeeded", 1)
    }


def test_a_refusal_met_during_the_attempt_waits_without_an_error_record(
    clean_jobs: None,
    upstream: tuple[str, Script],  # noqa: F811
    ops_user: Any,
) -> None:
    name, script = upstream
    records = ErrorRecord.objects.count()
    payload = {"provider": name, "path": "/v1/parse"}
    fail(breaker(name), 5)
    elapse_cooldown(name)
    probe = breaker_registry.get(name).acquire()  # the only probe slot, taken elsewhere
    slot_taken = create_job(kind="test.client_call", payload=payload)[0]
    assert run_job(str(slot_taken.id)) == f"waiting for breaker {name}"
    slot_taken.refresh_from_db()
    assert (
        slot_taken.attempts == 0 and "raised during the attempt" in slot_taken.events.last().message
    )
    # Until the probe's lease could end (30 s), not the second after which it is refused again.
    assert (slot_taken.run_after - timezone.now()).total_seconds() > 25
    breaker_registry.get(name).success(probe)

    force_open(name, ops_user)
    forced = create_job(kind="test.client_call", payload=payload)[0]
    assert run_job(str(forced.id)) == f"waiting for breaker {name}"
    assert ErrorRecord.objects.count() == records and script.requests == 0
