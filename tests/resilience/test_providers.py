from __future__ import annotations

import subprocess
from typing import Any

import pytest

from controlplane.resilience import providers
from controlplane.resilience.failover import call_group
from tests.conftest import PYTHON, REPO, subprocess_env
from tests.resilience.flaky_server import Script, flaky_server


@pytest.fixture
def group(fresh_name: str, settings: Any) -> Any:
    def configure(first_url: str) -> str:
        primary, backup = f"{fresh_name}-primary", f"{fresh_name}-backup"
        settings.PROVIDERS = {
            primary: {"base_url": first_url, "mode": "real", "timeout": 2},
            backup: {"mode": "mock"},
        }
        settings.PROVIDER_GROUPS = {"llm": [primary, backup]}
        settings.RETRY_DEFAULTS = {**settings.RETRY_DEFAULTS, "max_attempts": 1}
        providers._clients.clear()
        return backup

    yield configure
    providers._clients.clear()


def test_it_fails_over_on_a_retryable_failure(group: Any) -> None:
    script = Script([(503, {})])
    with flaky_server(script) as url:
        backup = group(url)
        result = call_group("llm", "GET", "/models")
    assert result.provider == backup
    assert result.response.json()["mock"] is True
    assert script.requests == 1
    assert result.tried[0].code.endswith("_SERVER_ERROR")


def test_it_uses_the_first_provider_when_healthy(group: Any) -> None:
    with flaky_server(Script([(200, {})])) as url:
        group(url)
        result = call_group("llm", "GET", "/models")
    assert result.provider.endswith("-primary")


PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "s" * 60,
    "ALLOWED_HOSTS": "ops.example.com",
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PROVIDERS": '{"openai": {"mode": "mock"}}'}, "controlplane.E001"),
        ({"PROVIDER_FALLBACK_TO_MOCK": "true"}, "controlplane.E002"),
    ],
)
def test_production_refuses_mock_providers(env: dict[str, str], expected: str) -> None:
    result = subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=REPO,
        env=subprocess_env(**PRODUCTION, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert expected in result.stderr
    assert "refused in production" in result.stderr or "silently get mock data" in result.stderr


def test_gunicorns_wsgi_entry_point_refuses_too() -> None:
    result = subprocess.run(
        [PYTHON, "-c", "import controlplane.wsgi"],
        cwd=REPO,
        env=subprocess_env(**PRODUCTION, PROVIDERS='{"openai": {"mode": "mock"}}'),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "controlplane.E001" in result.stderr


def test_development_allows_mock_providers() -> None:
    result = subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=REPO,
        env=subprocess_env(PROVIDERS='{"openai": {"mode": "mock"}}'),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
