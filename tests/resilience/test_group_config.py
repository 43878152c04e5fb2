"""Provider groups are checked at start-up: a clear error for an unknown provider or a
malformed fallback in every environment; production refuses a mock fallback (E002) but
takes declared static and last_good fallbacks."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from controlplane.resilience.groups import GroupConfigError, parse_group
from tests.conftest import PYTHON, REPO, subprocess_env
from tests.resilience.test_providers import PRODUCTION

PROVIDERS = {"a": {"base_url": "https://a.example"}, "b": {"base_url": "https://b.example"}}


def check(groups: dict[str, Any], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=REPO,
        env=subprocess_env(
            PROVIDERS=json.dumps(PROVIDERS), PROVIDER_GROUPS=json.dumps(groups), **env
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["a", "ghost"], "names unknown providers ['ghost']"),
        ({"providers": []}, "providers must be a non-empty list"),
        ({"providers": ["a", "a"]}, "lists a provider twice"),
        ({"providers": ["a"], "fallback": {"type": "cached"}}, "with a type among"),
        ({"providers": ["a"], "fallback": {"type": "static", "status": 503, "json": {}}},
         "200 to 299"),
        ({"providers": ["a"], "fallback": {"type": "static"}}, 'needs its "json" body'),
        ({"providers": ["a"], "fallback": {"type": "last_good"}}, "needs max_age_seconds"),
        ({"providers": ["a"], "fallback": {"type": "last_good", "max_age_seconds": 60, "x": 1}},
         "unknown keys ['x']"),
        ({"providers": ["a"], "try_unhealthy": "no"}, "try_unhealthy must be true or false"),
        ({"members": ["a"]}, "unknown keys ['members']"),
    ],
)  # fmt: skip
def test_each_problem_has_its_message(raw: Any, message: str) -> None:
    with pytest.raises(GroupConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_group("llm", raw, PROVIDERS)


def test_both_forms_parse() -> None:
    assert parse_group("llm", ["a", "b"], PROVIDERS).providers == ("a", "b")
    config = parse_group(
        "llm",
        {"providers": ["b"], "try_unhealthy": False,
         "fallback": {"type": "last_good", "max_age_seconds": 60}},
        PROVIDERS,
    )  # fmt: skip
    assert (config.providers, config.try_unhealthy) == (("b",), False)
    assert (config.fallback.type, config.fallback.max_age_seconds) == ("last_good", 60.0)


def test_start_up_refuses_a_broken_group_in_every_environment() -> None:
    result = check({"llm": ["a", "ghost"]})
    assert result.returncode != 0
    assert "controlplane.E011" in result.stderr
    assert "Provider group 'llm': names unknown providers ['ghost']" in result.stderr


def test_production_refuses_a_mock_fallback() -> None:
    result = check({"llm": {"providers": ["a"], "fallback": {"type": "mock"}}}, **PRODUCTION)
    assert result.returncode != 0
    assert "controlplane.E002" in result.stderr
    assert "Provider group 'llm' declares a mock fallback" in result.stderr


def test_production_takes_declared_static_and_last_good_fallbacks() -> None:
    groups = {
        "llm": {"providers": ["a"], "fallback": {"type": "static", "json": {"answer": None}}},
        "rates": {"providers": ["b"], "fallback": {"type": "last_good", "max_age_seconds": 60}},
    }
    result = check(groups, **PRODUCTION, METRICS_TOKEN="m" * 40)
    assert "controlplane.E002" not in result.stderr
    assert "controlplane.E011" not in result.stderr
    assert "fallback" not in result.stderr
