"""Providers: one ServiceClient per configured upstream, their health, mock providers.

Settings (env ``PROVIDERS`` as JSON):

    PROVIDERS = {"openai": {"base_url": "https://...", "mode": "real", "api_key_env": "OPENAI_KEY",
                            "timeout": 10, "max_attempts": 3,
                            "idempotency_header": "Idempotency-Key"},
                 "mistral": {"base_url": "https://...", "mode": "mock"}}

Each provider has its own breaker (named after it), timeout, attempts and idempotency
header, checked at start-up (system check controlplane.E012, every environment: a bad value
would otherwise surface as a failed job). Provider groups, failover and fallbacks are in
``failover`` and ``groups``. A
provider in ``mode: mock`` answers from an in-process httpx MockTransport; production
refuses to start with one (system check controlplane.E001), or with
PROVIDER_FALLBACK_TO_MOCK or a group's mock fallback (E002).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

from controlplane.resilience.client import ServiceClient
from controlplane.resilience.retry import RetryPolicy

logger = logging.getLogger("controlplane.providers")
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"
_clients: dict[str, ServiceClient] = {}
# A provider's "client_calls" entry: what API clients may call on it through jobs.
CLIENT_CALL = re.compile(r"(GET|HEAD|POST|PUT|PATCH|DELETE) (/[^\s?#]*)")
# An HTTP field name (RFC 9110 token): anything else fails at the first call.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
MODES = ("real", "mock")


class ProviderConfigError(ValueError):
    """A PROVIDERS entry that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class ProviderConfig:
    mode: str
    timeout: float
    max_attempts: int
    idempotency_header: str


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def parse_provider(raw: Any) -> ProviderConfig:
    """One PROVIDERS entry's call settings, checked; ProviderConfigError names the first
    problem. Strict on types: "3" or 2.5 attempts is a mistake to report, not to round."""
    if not isinstance(raw, dict):
        raise ProviderConfigError("must be an object of settings")
    mode = raw.get("mode", "real")
    if mode not in MODES:
        raise ProviderConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    timeout = raw.get("timeout", 10.0)
    if not _number(timeout) or timeout <= 0:
        raise ProviderConfigError(f"timeout must be a number of seconds above 0, not {timeout!r}")
    attempts = raw.get("max_attempts", settings.RETRY_DEFAULTS["max_attempts"])
    if type(attempts) is not int or attempts < 1:
        raise ProviderConfigError(f"max_attempts must be a whole number from 1, not {attempts!r}")
    header = raw.get("idempotency_header", DEFAULT_IDEMPOTENCY_HEADER)
    if not isinstance(header, str) or not HEADER_NAME.fullmatch(header):
        raise ProviderConfigError(
            f"idempotency_header must be an HTTP header name (letters, digits, - and the "
            f"like, no spaces or colons), not {header!r}"
        )
    return ProviderConfig(mode, float(timeout), attempts, header)


def provider_problems() -> list[str]:
    """Every PROVIDERS entry whose call settings cannot be used, one message each."""
    problems = []
    for name, raw in sorted(settings.PROVIDERS.items()):
        try:
            parse_provider(raw)
        except ProviderConfigError as exc:
            problems.append(f"Provider {name!r}: {exc}.")
    return problems


def client_calls(provider: str) -> list[str]:
    """What API clients may call on ``provider`` (jobs of kind http.request): its
    "client_calls" setting, by default only its health path."""
    config = settings.PROVIDERS[provider]
    return config.get("client_calls", [f"GET {config.get('health_path', '/health')}"])


def client_may_call(provider: str, method: str, path: str) -> bool:
    """Does a client_calls rule allow ``method`` on ``path`` (query string aside)? A "*" in a
    rule's path matches any characters, "/" included."""
    bare = path.split("?", 1)[0]
    for rule in client_calls(provider):
        found = CLIENT_CALL.fullmatch(rule)
        if found and found.group(1) == method and fnmatch.fnmatchcase(bare, found.group(2)):
            return True
    return False


def mock_handler(provider: str) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"mock": True, "provider": provider, "path": request.url.path}
        )

    return handle


def client_for(provider: str) -> ServiceClient:
    client = _clients.get(provider)
    if client is None:
        config = settings.PROVIDERS[provider]
        try:
            checked = parse_provider(config)
        except ProviderConfigError as exc:
            # The start-up check refuses this; reaching it means checks were skipped.
            raise ProviderConfigError(f"provider {provider!r}: {exc}") from None
        headers = {}
        key_env = config.get("api_key_env")
        if key_env and os.environ.get(key_env):
            headers["Authorization"] = f"Bearer {os.environ[key_env]}"
        transport = None
        if checked.mode == "mock":
            logger.warning("provider %s is a MOCK (development only)", provider)
            transport = httpx.MockTransport(mock_handler(provider))
        client = ServiceClient(
            provider,
            config.get("base_url", f"http://{provider}.mock"),
            timeout=checked.timeout,
            retry=RetryPolicy.from_settings(max_attempts=checked.max_attempts),
            headers=headers,
            transport=transport,
            idempotency_header=checked.idempotency_header,
        )
        _clients[provider] = client
    return client


def reset_clients() -> None:
    """Forget this process's clients, so the next call builds them from the settings of the
    moment with the budgets of the moment (tests)."""
    while _clients:
        _clients.popitem()[1].close()


_HEALTH_ORDER = {"healthy": 0, None: 1, "degraded": 2, "unhealthy": 3}


def _unknown_health() -> dict[str, str]:
    return {}


_health_reader: Callable[[], dict[str, str]] = _unknown_health


def set_health_reader(reader: Callable[[], dict[str, str]]) -> None:
    """Where failover learns each provider's latest health ("healthy", "degraded",
    "unhealthy"): the health app probes providers and installs its reader from
    HealthConfig.ready(). Until then every provider's health is unknown."""
    global _health_reader
    _health_reader = reader


def by_health(providers: list[str]) -> list[tuple[str, str | None]]:
    """Each provider with its latest health (None: unknown), healthy first, then unknown,
    degraded, unhealthy; configured order within each. Health comes from the database:
    when it cannot be read, every provider's is unknown and the configured order holds."""
    try:
        health = _health_reader()
    except Exception:  # an outage must not stop failover, only its ordering
        logger.warning("provider health unreadable; trying providers in configured order")
        health = {}
    ordered = sorted(providers, key=lambda name: _HEALTH_ORDER.get(health.get(name), 1))
    return [(name, health.get(name)) for name in ordered]
