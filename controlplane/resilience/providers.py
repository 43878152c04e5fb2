"""Provider groups with failover, and mock providers for development.

Settings (env ``PROVIDERS`` / ``PROVIDER_GROUPS`` as JSON):

    PROVIDERS = {"openai": {"base_url": "https://...", "mode": "real", "api_key_env": "OPENAI_KEY"},
                 "mistral": {"base_url": "https://...", "mode": "mock"}}
    PROVIDER_GROUPS = {"llm": ["openai", "mistral"]}

A group calls the first provider whose breaker permits and falls over to the
next on a retryable failure; the chosen provider is returned and logged. A
provider in ``mode: mock`` answers from an in-process httpx MockTransport;
production refuses to start with one (system check controlplane.E001), or with
PROVIDER_FALLBACK_TO_MOCK (E002).
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

from controlplane.errors.exceptions import ServiceUnavailableError, UserFacingError
from controlplane.errors.recording import record_error
from controlplane.resilience.client import ServiceClient

logger = logging.getLogger("controlplane.providers")
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


def _mock_handler(provider: str) -> Any:
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
            transport = httpx.MockTransport(_mock_handler(provider))
        client = ServiceClient(
            provider,
            config.get("base_url", f"http://{provider}.mock"),
            timeout=float(config.get("timeout", 10.0)),
            headers=headers,
            transport=transport,
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


def _by_health(providers: list[str]) -> list[str]:
    """Healthy providers first, then unknown, degraded, unhealthy; configured order within each."""
    health = _health_reader()
    return sorted(providers, key=lambda name: _HEALTH_ORDER[health.get(name)])


@dataclass(frozen=True)
class ProviderResult:
    provider: str
    response: httpx.Response
    skipped: tuple[str, ...]


def call_group(group: str, method: str, url: str, **kwargs: Any) -> ProviderResult:
    """Call the group's providers in order, failing over on retryable failures."""
    providers = _by_health(settings.PROVIDER_GROUPS[group])
    skipped: list[str] = []
    last: UserFacingError | None = None
    for provider in providers:
        client = client_for(provider)
        if not client.breaker.allows():
            skipped.append(f"{provider}: breaker open")
            continue
        try:
            response = client.request(method, url, record=False, **kwargs)
        except UserFacingError as exc:
            if not exc.retryable:
                record_error(exc, service=provider, breaker_name=client.breaker.name)
                raise
            last = exc
            skipped.append(f"{provider}: {exc.code}")
            continue
        logger.info("provider group %s served by %s (skipped: %s)", group, provider, skipped)
        return ProviderResult(provider, response, tuple(skipped))
    if settings.PROVIDER_FALLBACK_TO_MOCK and settings.ENVIRONMENT != "production":
        logger.warning("provider group %s fell back to MOCK data (skipped: %s)", group, skipped)
        mock = httpx.Client(transport=httpx.MockTransport(_mock_handler(f"{group}-mock")))
        response = mock.request(method, f"http://{group}.mock{url}", **kwargs)
        return ProviderResult(f"{group}-mock", response, tuple(skipped))
    error = ServiceUnavailableError(
        code=f"{group.upper()}_ALL_PROVIDERS_FAILED",
        technical_message=f"every provider of {group} failed or was open: {skipped}",
        context={"skipped": skipped},
        original=last,
        retry_after=getattr(last, "retry_after", None),
    )
    record_error(error, service=group)
    raise error
