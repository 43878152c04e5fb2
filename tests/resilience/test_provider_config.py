"""Each provider's call settings (mode, timeout, max_attempts, idempotency_header) are checked
at start-up in every environment, with a clear message (controlplane.E012), instead of
failing the first job that calls the provider."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from controlplane.resilience.providers import ProviderConfigError, client_for, parse_provider
from tests.conftest import PYTHON, REPO, subprocess_env
from tests.resilience.test_providers import PRODUCTION


def check(providers: dict[str, Any], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=REPO,
        env=subprocess_env(PROVIDERS=json.dumps(providers), **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("https://a.example", "must be an object of settings"),
        ({"mode": "mok"}, "mode must be one of real, mock, not 'mok'"),
        ({"timeout": "10"}, "timeout must be a number of seconds above 0, not '10'"),
        ({"timeout": 0}, "timeout must be a number of seconds above 0, not 0"),
        ({"max_attempts": "3"}, "max_attempts must be a whole number from 1, not '3'"),
        ({"max_attempts": 2.5}, "max_attempts must be a whole number from 1, not 2.5"),
        ({"max_attempts": 0}, "max_attempts must be a whole number from 1, not 0"),
        ({"max_attempts": True}, "max_attempts must be a whole number from 1, not True"),
        ({"idempotency_header": "Idempotency Key"}, "must be an HTTP header name"),
        ({"idempotency_header": "X-Key:"}, "must be an HTTP header name"),
        ({"idempotency_header": ""}, "must be an HTTP header name"),
        ({"idempotency_header": 7}, "must be an HTTP header name"),
    ],
)
def test_each_problem_has_its_message(raw: Any, message: str) -> None:
    with pytest.raises(ProviderConfigError) as raised:
        parse_provider(raw)
    assert message in str(raised.value)


def test_defaults_and_good_values_parse(settings: Any) -> None:
    assert parse_provider({}) == parse_provider(
        {
            "mode": "real",
            "timeout": 10,
            "max_attempts": settings.RETRY_DEFAULTS["max_attempts"],
            "idempotency_header": "Idempotency-Key",
        }
    )
    config = parse_provider({"mode": "mock", "timeout": 2.5, "max_attempts": 1,
                             "idempotency_header": "X-Request-Id"})  # fmt: skip
    assert (config.mode, config.timeout, config.max_attempts, config.idempotency_header) == (
        "mock",
        2.5,
        1,
        "X-Request-Id",
    )


def test_start_up_refuses_bad_call_settings_in_every_environment() -> None:
    result = check(
        {
            "ocr": {"base_url": "https://o.example", "max_attempts": "three"},
            "llm": {"base_url": "https://l.example", "idempotency_header": "Idempotency Key"},
            "fx": {"base_url": "https://f.example", "timeout": 5, "max_attempts": 2},
        }
    )
    assert result.returncode != 0
    assert result.stderr.count("controlplane.E012") == 2, result.stderr
    assert "Provider 'ocr': max_attempts must be a whole number from 1, not 'three'" in (
        result.stderr
    )
    assert "Provider 'llm': idempotency_header must be an HTTP header name" in result.stderr
    assert "'fx'" not in result.stderr


def test_production_takes_good_call_settings() -> None:
    providers = {"fx": {"base_url": "https://f.example", "timeout": 5, "max_attempts": 2}}
    result = check(providers, **PRODUCTION, METRICS_TOKEN="m" * 40)
    assert "controlplane.E012" not in result.stderr


def test_a_client_is_never_built_from_bad_settings(settings: Any) -> None:
    """Should checks have been skipped, the first call names the setting (not a bare
    ValueError from int())."""
    settings.PROVIDERS = {"ocr": {"base_url": "https://o.example", "max_attempts": "three"}}
    with pytest.raises(ProviderConfigError, match="provider 'ocr': max_attempts"):
        client_for("ocr")
