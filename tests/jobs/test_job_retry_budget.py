"""A job's attempt after its first repeats its upstream calls: each is a retry of the same
logical call and spends the upstream's retry budget, shared by every process, never a first
attempt that would raise that budget. A job whose retry the budget refuses fails with
RETRY_BUDGET_EXHAUSTED instead of coming back for another one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models.functions import Now

from controlplane.errors.models import ErrorRecord
from controlplane.resilience import providers
from controlplane.resilience.budget import budget_for, reset_budgets
from controlplane.resilience.models import RetryBudgetBucket
from jobs.actions import create_job
from jobs.models import Job
from jobs.tasks import run_job
from tests.breakers.conftest import fresh_name  # noqa: F401
from tests.jobs import breaker_kinds  # noqa: F401 -- registers test.client_call
from tests.jobs.test_breaker_waits import force_open, http_job
from tests.resilience.flaky_server import Script, flaky_server

JOBS = 6
RATIO = 0.5
FLOOR = 2


@pytest.fixture
def dead_upstream(
    fresh_name: str,  # noqa: F811
    settings: Any,
) -> Iterator[tuple[str, Script]]:
    """A real upstream answering 503 to everything, as provider ``fresh_name``: one attempt
    per call (the job's attempts are the retries here), and a breaker that never opens, so
    the retry budget alone bounds what reaches it."""
    script = Script([(503, {})])
    settings.RETRY_BUDGET_RATIO = RATIO
    settings.RETRY_BUDGET_MIN_PER_WINDOW = FLOOR
    settings.BREAKER_DEFAULTS = {**settings.BREAKER_DEFAULTS, "failure_threshold": 1000}
    settings.JOB_RETRY_INITIAL_DELAY = settings.JOB_RETRY_MAX_DELAY = 0
    reset_budgets()
    providers.reset_clients()  # each client keeps the budget it was built with
    with flaky_server(script) as url:
        settings.PROVIDERS = {
            fresh_name: {
                "base_url": url,
                "mode": "real",
                "timeout": 2,
                "max_attempts": 1,
                "client_calls": ["GET /v1/parse"],
            }
        }
        yield fresh_name, script
    reset_budgets()
    providers.reset_clients()


def test_job_retries_stay_within_the_upstreams_retry_budget(
    clean_jobs: None, dead_upstream: tuple[str, Script]
) -> None:
    name, script = dead_upstream
    jobs = [http_job(name, max_attempts=3) for _ in range(JOBS)]
    for _ in range(3):  # attempt 1 of every job, then 2, then 3 (no backoff to wait out)
        for job in jobs:
            Job.objects.filter(pk=job.pk, status="queued").update(run_after=Now())
            run_job(str(job.id))

    # JOBS logical calls: their first attempts plus the retries the budget allows them.
    allowed_retries = RATIO * JOBS + FLOOR
    assert script.requests == JOBS + allowed_retries  # 11, not 18 (every attempt of every job)
    assert budget_for(name).sync()  # this process's last counts, into the shared table
    counted = RetryBudgetBucket.objects.filter(upstream=name).totals_by_upstream()[name]
    assert (counted["first_attempts"], counted["retries"]) == (JOBS, allowed_retries)

    ended = Counter(Job.objects.values_list("status", "error_code", "attempts"))
    # The sixth job's second attempt was refused before sending anything: it failed then,
    # with an attempt left; the five granted a retry were refused their third.
    assert ended == {
        ("failed", "RETRY_BUDGET_EXHAUSTED", 2): 1,
        ("failed", "RETRY_BUDGET_EXHAUSTED", 3): JOBS - 1,
    }
    early = Job.objects.get(attempts=2)
    record = ErrorRecord.objects.get(support_id=early.error_support_id)
    assert (record.code, record.job_id, record.context["attempts"]) == (
        "RETRY_BUDGET_EXHAUSTED",
        early.id,
        0,  # nothing sent: the refusal came before the call
    )
    assert "attempt 1 of job" in record.context["refused_failure"]["message"]
    assert early.events.last().to_status == "failed"


def test_a_later_attempt_that_meets_an_open_breaker_waits_without_spending_the_budget(
    clean_jobs: None, dead_upstream: tuple[str, Script], ops_user: Any
) -> None:
    name, script = dead_upstream
    # No breakers hook: the open breaker is met in the attempt, where a retry is spent.
    job = create_job(kind="test.client_call", payload={"provider": name}, max_attempts=3)[0]
    assert run_job(str(job.id)) == "retrying"  # attempt 1: a first attempt, 503
    force_open(name, ops_user)
    Job.objects.filter(pk=job.pk).update(run_after=Now())
    assert run_job(str(job.id)) == f"waiting for breaker {name}"
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("queued", 1)
    budget = budget_for(name)
    assert (budget.totals().retries, budget.totals().refused) == (0, 0)
    assert script.requests == 1
