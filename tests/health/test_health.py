from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from controlplane.breakers.circuit import breaker
from controlplane.health.models import ProviderCheck
from controlplane.health.probes import probe_all
from tests.breakers.conftest import fail
from tests.conftest import run_with_dead_database, token_client
from tests.resilience.flaky_server import Script, flaky_server


def health() -> tuple[int, dict[str, Any]]:
    response = APIClient().get("/api/v1/health/")
    return response.status_code, response.json()


@pytest.fixture
def fresh(transactional_db: Any, settings: Any) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM breakers_breakerevent; DELETE FROM breakers_breaker; "
            "DELETE FROM health_providercheck"
        )
    from controlplane.breakers.registry import registry

    registry.runtimes.clear()
    settings.PROVIDERS = {}
    return settings


def test_all_checks_are_reported(fresh: Any) -> None:
    status, body = health()
    assert status == 200
    assert set(body["checks"]) == {
        "database",
        "migrations",
        "workers",
        "breakers",
        "providers",
        "retry_budgets",
        "error_spool",
        "lookup_cache",
    }
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert body["checks"]["migrations"]["pending"] == 0
    assert {"clusters", "queue_depth", "oldest_queued_age_seconds"} <= set(
        body["checks"]["workers"]
    )


def test_an_open_breaker_makes_it_degraded(fresh: Any) -> None:
    fail(breaker("health-test", failure_threshold=1), 1)
    status, body = health()
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["breakers"] == {
        "status": "degraded",
        "open": 1,
        "open_names": ["health-test"],
        "overridden": [],
        "clients_not_closed": 0,
        "runtime_degraded": False,
    }


def test_an_unhealthy_provider_makes_it_degraded(fresh: Any) -> None:
    with flaky_server(Script([(503, {})])) as url:
        fresh.PROVIDERS = {
            "ocr": {"base_url": url, "health_path": "/health"},
            "llm": {"mode": "mock"},
        }
        assert probe_all() == {"ocr": "unhealthy", "llm": "healthy"}
    status, body = health()
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["providers"]["providers"]["ocr"]["status"] == "unhealthy"
    assert ProviderCheck.objects.filter(provider="ocr").count() == 1


def test_a_slow_provider_is_degraded(fresh: Any) -> None:
    with flaky_server(Script([(200, {})])) as url:
        fresh.PROVIDERS = {"ocr": {"base_url": url}}
        fresh.PROVIDER_HEALTH_SLOW_MS = 0.001
        assert probe_all() == {"ocr": "degraded"}


def test_failover_prefers_healthy_providers(fresh: Any) -> None:
    from controlplane.resilience import providers
    from controlplane.resilience.failover import call_group

    fresh.PROVIDERS = {"first": {"mode": "mock"}, "second": {"mode": "mock"}}
    fresh.PROVIDER_GROUPS = {"llm": ["first", "second"]}
    ProviderCheck.objects.create(provider="first", status="unhealthy")
    ProviderCheck.objects.create(provider="second", status="healthy")
    providers._clients.clear()
    assert call_group("llm", "GET", "/models").provider == "second"
    providers._clients.clear()


DOWN = """
import json
from rest_framework.test import APIClient
response = APIClient().get("/api/v1/health/")
live = APIClient().get("/healthz")
print(json.dumps({"status": response.status_code, "body": response.json(),
                  "live": [live.status_code, live.content.decode()]}))
"""


def test_unreachable_database_is_unhealthy_503() -> None:
    answer, _ = run_with_dead_database(DOWN)
    assert answer["status"] == 503
    assert answer["body"]["status"] == "unhealthy"
    assert answer["body"]["checks"]["database"]["status"] == "unhealthy"
    assert answer["live"] == [200, "ok"]  # liveness does not depend on the database


def test_a_clients_open_breaker_does_not_degrade_this_service(fresh: Any, client_user: Any) -> None:
    fresh.BREAKER_DEFAULTS = {**fresh.BREAKER_DEFAULTS, "failure_threshold": 1}
    api = token_client(client_user)
    api.post("/api/v1/breakers/client-upstream/outcomes/", {"outcome": "failure"}, format="json")
    status, body = health()
    check = body["checks"]["breakers"]
    assert (status, check["status"], check["open"], check["clients_not_closed"]) == (
        200,
        "healthy",
        0,
        1,
    )
