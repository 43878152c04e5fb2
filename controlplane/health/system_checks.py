"""System checks for production configuration.

They run with every management command (`check`, `runworker`, ...), with
`check --deploy`, and at gunicorn start-up (controlplane.startup). With
ENVIRONMENT=production each misconfiguration below refuses to start with its
own id; in development and test the same things are allowed and logged.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from controlplane.resilience.groups import group_problems, mock_fallback_groups
from controlplane.resilience.providers import CLIENT_CALL, provider_problems

logger = logging.getLogger("controlplane.checks")


def _mock_providers() -> list[str]:
    return sorted(
        n
        for n, c in settings.PROVIDERS.items()
        if isinstance(c, dict) and c.get("mode", "real") == "mock"
    )


@register(Tags.security, deploy=False)
def production_config_check(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if settings.ENVIRONMENT != "production":
        if _mock_providers():
            logger.info(
                "mock providers in use (allowed in %s): %s", settings.ENVIRONMENT, _mock_providers()
            )
        return []
    problems: list[Any] = []
    for name in _mock_providers():
        problems.append(
            Error(
                f"Provider {name!r} is in mock mode, which is refused in production.",
                hint=f'Set PROVIDERS["{name}"]["mode"] to "real" with its base_url and API key.',
                id="controlplane.E001",
            )
        )
    if settings.PROVIDER_FALLBACK_TO_MOCK:
        problems.append(
            Error(
                "PROVIDER_FALLBACK_TO_MOCK is enabled: failed calls would silently get mock data.",
                hint="Unset PROVIDER_FALLBACK_TO_MOCK in production.",
                id="controlplane.E002",
            )
        )
    for group in mock_fallback_groups():
        problems.append(
            Error(
                f"Provider group {group!r} declares a mock fallback: failed calls would silently "
                "get mock data.",
                hint='Declare a "static" or "last_good" fallback instead, or none.',
                id="controlplane.E002",
            )
        )
    if settings.DEBUG:
        problems.append(
            Error(
                "DEBUG is on in production: error pages would show code, settings and data.",
                hint="Unset DEBUG (or DEBUG=false).",
                id="controlplane.E003",
            )
        )
    if settings.SECRET_KEY == settings.INSECURE_DEFAULT_SECRET_KEY or len(settings.SECRET_KEY) < 32:
        problems.append(
            Error(
                "SECRET_KEY is unset, the development default, or shorter than 32 characters.",
                hint="Set SECRET_KEY to a long random value, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
                id="controlplane.E004",
            )
        )
    for name, config in sorted(settings.PROVIDERS.items()):
        if not isinstance(config, dict):
            continue  # E012 says so, in every environment
        key_env = config.get("api_key_env")
        if config.get("mode", "real") == "real" and key_env and not os.environ.get(key_env):
            problems.append(
                Error(
                    f"Provider {name!r} needs its API key in ${key_env}, which is not set.",
                    hint=f"Set {key_env}, or remove api_key_env if {name} needs no key.",
                    id="controlplane.E005",
                )
            )
        if config.get("mode", "real") == "real" and not config.get("base_url"):
            problems.append(
                Error(
                    f"Provider {name!r} has no base_url.",
                    id="controlplane.E007",
                )
            )
    if settings.EMBEDDED_DATABASE:
        problems.append(
            Error(
                "DATABASE_URL is not set: the embedded PostgreSQL is for development and tests "
                "only.",
                hint="Set DATABASE_URL=postgres://user:password@host:5432/name.",
                id="controlplane.E006",
            )
        )
    if settings.BREAKER_DEFAULTS["fail_open"]:
        problems.append(
            Warning(
                "BREAKER_FAIL_OPEN is on: while PostgreSQL is unreachable, breakers permit calls "
                "on local counts instead of refusing them.",
                hint="Intended for most upstreams; set BREAKER_FAIL_OPEN=false to fail closed.",
                id="controlplane.W002",
            )
        )
    if not settings.METRICS_TOKEN and not settings.METRICS_TRUSTED_PROXIES:
        problems.append(
            Error(
                "METRICS_TOKEN is not set: /metrics would be decided by the client address, "
                "which behind a reverse proxy is the proxy's for every request.",
                hint="Set METRICS_TOKEN (Prometheus: authorization credentials), or name the "
                "proxies in METRICS_TRUSTED_PROXIES so X-Forwarded-For is believed.",
                id="controlplane.E008",
            )
        )
    if settings.ALERT_WEBHOOK_URLS and not settings.ALERT_WEBHOOK_SECRET:
        problems.append(
            Error(
                "ALERT_WEBHOOK_URLS is set without ALERT_WEBHOOK_SECRET: alert webhooks would "
                "go unsigned, and receivers could not tell them from forged ones.",
                hint="Set ALERT_WEBHOOK_SECRET (receivers verify X-Controlplane-Signature).",
                id="controlplane.E013",
            )
        )
    return problems


@register(Tags.security)
def configuration_check(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Settings that would fail at request time, refused at start-up in every environment."""
    problems: list[Any] = []
    for name in ("METRICS_ALLOWED_NETWORKS", "METRICS_TRUSTED_PROXIES"):
        for network in getattr(settings, name):
            try:
                ipaddress.ip_network(network)
            except ValueError:
                problems.append(
                    Error(
                        f"{name} has {network!r}, which is not a network.", id="controlplane.E009"
                    )
                )
    for message in provider_problems():
        problems.append(
            Error(
                message,
                hint='PROVIDERS entries: {"base_url": "https://...", "mode": "real" | "mock", '
                '"timeout": 10, "max_attempts": 3, "idempotency_header": "Idempotency-Key", ...}.',
                id="controlplane.E012",
            )
        )
    for provider, config in sorted(settings.PROVIDERS.items()):
        if not isinstance(config, dict):
            continue  # E012 says so
        for rule in config.get("client_calls", []):
            if not isinstance(rule, str) or not CLIENT_CALL.fullmatch(rule):
                problems.append(
                    Error(
                        f"Provider {provider!r}: client_calls entry {rule!r} is not "
                        '"METHOD /path" (a * in the path matches anything).',
                        id="controlplane.E010",
                    )
                )
    for message in group_problems():
        problems.append(
            Error(
                message,
                hint='PROVIDER_GROUPS entries: ["provider", ...] or {"providers": [...], '
                '"try_unhealthy": true, "fallback": {"type": "static", "status": 200, "json": '
                '...} | {"type": "last_good", "max_age_seconds": 3600}}.',
                id="controlplane.E011",
            )
        )
    return problems
