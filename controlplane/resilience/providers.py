"""Providers: one ServiceClient per configured upstream, their health, mock providers.

Settings (env ``PROVIDERS`` as JSON):

    PROVIDERS = {"openai": {"base_url": "https://...", "mode": "real", "api_key_env": "OPENAI_KEY",
                            "timeout": 10, "max_attempts": 3,
                            "idempotency_header": "Idempotency-Key"},
                 "mistral": {"base_url": "https://...", "mode": "mock"}}

Each provider has its own breaker (named after it), timeout, attempts and idempotency
header. Provider groups, failover and fallbacks are in ``failover`` and ``groups``. A
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
        headers = {}
        key_env = config.get("api_key_env")
        if key_env and os.environ.get(key_env):
            headers["Authorization"] = f"Bearer {os.environ[key_env]}"
        transport = None
        if config.get("mode") == "mock":
            logger.warning("provider %s is a MOCK (development only)", provider)
            transport = httpx.MockTransport(mock_handler(provider))
        attempts = config.get("max_attempts", settings.RETRY_DEFAULTS["max_attempts"])
        client = ServiceClient(
            provider,
            config.get("base_url", f"http://{provider}.mock"),
            timeout=float(config.get("timeout", 10.0)),
            retry=RetryPolicy.from_settings(max_attempts=int(attempts)),
            headers=headers,
            transport=transport,
            idempotency_header=config.get("idempotency_header", DEFAULT_IDEMPOTENCY_HEADER),
        )
        _clients[provider] = client
    return client


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
