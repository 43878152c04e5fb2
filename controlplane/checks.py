"""System checks for production configuration (run at start-up and by `check --deploy`)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

logger = logging.getLogger("controlplane.checks")


@register(Tags.security, deploy=False)
def providers_check(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    mocks = sorted(n for n, c in settings.PROVIDERS.items() if c.get("mode") == "mock")
    if settings.ENVIRONMENT != "production":
        if mocks:
            logger.info("mock providers in use (allowed in %s): %s", settings.ENVIRONMENT, mocks)
        return problems
    for name in mocks:
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
    for group, members in settings.PROVIDER_GROUPS.items():
        unknown = [m for m in members if m not in settings.PROVIDERS]
        if unknown:
            problems.append(
                Warning(
                    f"Provider group {group!r} names unknown providers {unknown}.",
                    id="controlplane.W001",
                )
            )
    return problems
