"""With ENVIRONMENT=production, each misconfiguration refuses to start with its own id."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import PYTHON, REPO, subprocess_env

GOOD = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "k" * 60,
    "ALLOWED_HOSTS": "ops.example.com",
    "DEBUG": "false",
    "BREAKER_FAIL_OPEN": "false",
    "METRICS_TOKEN": "scrape-" + "t" * 40,
}


def check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy"],
        cwd=REPO,
        env=subprocess_env(**{**GOOD, **env}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_correct_production_config_passes() -> None:
    result = check()
    assert result.returncode == 0, result.stderr
    assert "controlplane." not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "check_id", "words"),
    [
        ({"DEBUG": "true"}, "controlplane.E003", "DEBUG is on in production"),
        ({"SECRET_KEY": ""}, "controlplane.E004", "SECRET_KEY is unset"),
        ({"SECRET_KEY": "short"}, "controlplane.E004", "shorter than 32"),
        ({"PROVIDERS": '{"openai": {"mode": "mock"}}'}, "controlplane.E001", "mock mode"),
        ({"PROVIDER_FALLBACK_TO_MOCK": "true"}, "controlplane.E002", "silently get mock data"),
        (
            {
                "PROVIDERS": '{"openai": {"mode": "real", "base_url": "https://api.x", '
                '"api_key_env": "OPENAI_KEY_FOR_TEST"}}'
            },
            "controlplane.E005",
            "needs its API key in $OPENAI_KEY_FOR_TEST",
        ),
        ({"DATABASE_URL": ""}, "controlplane.E006", "DATABASE_URL is not set"),
        ({"METRICS_TOKEN": ""}, "controlplane.E008", "METRICS_TOKEN is not set"),
        ({"METRICS_ALLOWED_NETWORKS": "10.0.0.0/33"}, "controlplane.E009", "not a network"),
        (
            {"PROVIDERS": '{"ocr": {"base_url": "https://o.x", "client_calls": ["parse"]}}'},
            "controlplane.E010",
            'is not "METHOD /path"',
        ),
    ],
)
def test_each_misconfiguration_is_refused(env: dict[str, str], check_id: str, words: str) -> None:
    result = check(**env)
    assert result.returncode != 0
    assert check_id in result.stderr and words in result.stderr, result.stderr


def test_failing_open_is_a_warning_not_an_error() -> None:
    result = check(BREAKER_FAIL_OPEN="true")
    assert result.returncode == 0, result.stderr
    assert "controlplane.W002" in result.stderr + result.stdout


def test_metrics_without_a_token_behind_named_proxies_is_an_explicit_choice() -> None:
    result = check(METRICS_TOKEN="", METRICS_TRUSTED_PROXIES="10.0.0.5/32")
    assert result.returncode == 0, result.stderr
    assert "controlplane.E008" not in result.stderr + result.stdout


def test_the_same_configuration_is_fine_in_development() -> None:
    result = subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=REPO,
        env=subprocess_env(
            DEBUG="true", PROVIDERS='{"openai": {"mode": "mock"}}', PROVIDER_FALLBACK_TO_MOCK="true"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
