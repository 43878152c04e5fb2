"""A scrape of /metrics after every family has something to say: breakers, jobs, lookups,
errors, retries, HTTP, providers and the spool."""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

import httpx
from django.test import Client

from controlplane.breakers.circuit import breaker
from controlplane.breakers.registry import registry
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.recording import record_error
from controlplane.health.models import ProviderCheck
from controlplane.lib import notifications
from controlplane.resilience.budget import budget_for
from controlplane.resilience.retry import RetryPolicy
from jobs.actions import create_job
from jobs.tasks import run_job
from lookups.exceptions import InvalidSlugError, MicroServiceNotFoundError
from lookups.models import MicroService
from lookups.resolver import CHANNEL, Lookups, get_lookups, reset_lookups
from tests.breakers.conftest import fail
from tests.conftest import forget_retry_budgets
from tests.lookups.conftest import settle

PROVIDERS = {
    "scrape-healthy": {"mode": "mock"},
    "scrape-unhealthy": {"base_url": "http://127.0.0.1:9"},
    "scrape-unchecked": {"base_url": "http://127.0.0.1:9"},
}


def _flaky() -> Any:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("first call refused")
        return "ok"

    return call


def listening_lookups() -> Lookups:
    """This process's lookups, fresh, following changes (so that hits are hits)."""
    reset_lookups()
    lookups = get_lookups()
    lookups.listen()
    deadline = time.monotonic() + 10
    while not notifications.listener.is_listening(CHANNEL):
        assert time.monotonic() < deadline, "the change listener did not start"
        time.sleep(0.01)
    return lookups


def exercise_every_family(settings: Any, client_user: Any) -> None:
    """Make each family of the exposition hold samples (the caller's test needs
    ``transactional_db``: a child of the scrape reads on connections of its own)."""
    settings.METRICS_CACHE_SECONDS = 0
    settings.PROVIDERS = PROVIDERS
    ProviderCheck.objects.create(provider="scrape-healthy", status=ProviderCheck.HEALTHY)
    ProviderCheck.objects.create(provider="scrape-unhealthy", status=ProviderCheck.UNHEALTHY)
    registry.runtimes.clear()  # a runtime kept from an earlier test knows a row now gone
    fail(breaker("scrape-breaker", failure_threshold=1), 2)  # a transition and a rejection
    record_error(InternalServerError(code="INTERNAL_ERROR"))
    RetryPolicy(initial_delay=0.0, max_delay=0.0).call(_flaky())
    budget = budget_for("scrape-upstream")
    while budget.spend_retry():  # until the budget refuses one (its floor, ~10 retries)
        pass
    forget_retry_budgets()
    for fail_times in (0, 1):  # one succeeds, one fails
        payload = {"seconds": 0, "fail_times": fail_times}
        job = create_job(kind="demo.sleep", payload=payload, max_attempts=1)[0]
        run_job(str(job.id))
    create_job(kind="demo.sleep", payload={"seconds": 0})  # one left in the queue
    lookups = listening_lookups()
    MicroService.objects.create(slug="scrape-service")
    settle(lookups)  # its change notice has arrived: what is read now stays cached
    lookups.lookup("scrape-service")  # a miss, found
    lookups.lookup("scrape-service")  # a hit
    for slug, error in (
        ("scrape-nothing", MicroServiceNotFoundError),
        ("NOT A SLUG", InvalidSlugError),
    ):
        with suppress(error):
            lookups.lookup(slug)
    lookups.export.push()
    Client().get("/api/v1/no-such-thing/")


def scrape() -> str:
    response = Client().get("/metrics")
    assert response.status_code == 200
    return response.content.decode()
