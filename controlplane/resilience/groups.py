"""Provider groups as configured: their providers, and what answers when none does.

``PROVIDER_GROUPS`` (env JSON) takes, per group, either a list of provider names or a dict:

    {"ocr": ["primary", "backup"],
     "llm": {"providers": ["openai", "mistral"],
             "try_unhealthy": true,
             "fallback": {"type": "static", "status": 200, "json": {"answer": null}}},
     "rates": {"providers": ["fx"], "fallback": {"type": "last_good", "max_age_seconds": 3600}}}

Fallback types: ``static`` (a fixed response, status 200-299), ``last_good`` (the last 2xx
answer to the same request, if younger than ``max_age_seconds``), ``mock`` (development
only: production refuses it at start-up, system check controlplane.E002).
``try_unhealthy: false`` skips providers whose latest health probe says unhealthy;
by default they are tried last. The system check controlplane.E011 reports every problem
below at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

FALLBACK_TYPES = ("static", "last_good", "mock")
_GROUP_KEYS = {"providers", "fallback", "try_unhealthy"}
_FALLBACK_KEYS = {
    "static": {"type", "status", "json"},
    "last_good": {"type", "max_age_seconds"},
    "mock": {"type"},
}


class GroupConfigError(ValueError):
    """A PROVIDER_GROUPS entry that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Fallback:
    type: str  # one of FALLBACK_TYPES
    status: int = 200  # static
    json: Any = None  # static
    max_age_seconds: float = 0.0  # last_good


@dataclass(frozen=True)
class GroupConfig:
    name: str
    providers: tuple[str, ...]
    fallback: Fallback | None = None
    try_unhealthy: bool = True


def _fallback(raw: Any) -> Fallback | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in FALLBACK_TYPES:
        raise GroupConfigError(
            f"fallback must be an object with a type among {', '.join(FALLBACK_TYPES)}"
        )
    kind = raw["type"]
    unknown = sorted(set(raw) - _FALLBACK_KEYS[kind])
    if unknown:
        raise GroupConfigError(f"{kind} fallback has unknown keys {unknown}")
    if kind == "static":
        status = raw.get("status", 200)
        if type(status) is not int or not 200 <= status <= 299:
            raise GroupConfigError("static fallback status must be an integer from 200 to 299")
        if "json" not in raw:
            raise GroupConfigError('static fallback needs its "json" body')
        return Fallback("static", status=status, json=raw["json"])
    if kind == "last_good":
        age = raw.get("max_age_seconds")
        if type(age) not in (int, float) or age <= 0:
            raise GroupConfigError("last_good fallback needs max_age_seconds, a number above 0")
        return Fallback("last_good", max_age_seconds=float(age))
    return Fallback("mock")


def parse_group(name: str, raw: Any, known_providers: Any) -> GroupConfig:
    """One PROVIDER_GROUPS entry, checked; GroupConfigError names the first problem."""
    if isinstance(raw, list):
        raw = {"providers": raw}
    if not isinstance(raw, dict):
        raise GroupConfigError("must be a list of provider names or an object with providers")
    unknown_keys = sorted(set(raw) - _GROUP_KEYS)
    if unknown_keys:
        raise GroupConfigError(f"unknown keys {unknown_keys}")
    members = raw.get("providers")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise GroupConfigError("providers must be a non-empty list of provider names")
    if len(set(members)) != len(members):
        raise GroupConfigError("providers lists a provider twice")
    unknown = [m for m in members if m not in known_providers]
    if unknown:
        raise GroupConfigError(f"names unknown providers {unknown} (not in PROVIDERS)")
    try_unhealthy = raw.get("try_unhealthy", True)
    if not isinstance(try_unhealthy, bool):
        raise GroupConfigError("try_unhealthy must be true or false")
    return GroupConfig(name, tuple(members), _fallback(raw.get("fallback")), try_unhealthy)


def group_config(name: str) -> GroupConfig:
    """The group ``name`` from settings (KeyError if there is none). Parsed on each call:
    cheap, and settings may change under tests."""
    try:
        return parse_group(name, settings.PROVIDER_GROUPS[name], settings.PROVIDERS)
    except GroupConfigError as exc:
        # The start-up check refuses this; reaching it means checks were skipped.
        raise GroupConfigError(f"provider group {name!r}: {exc}") from None


def group_problems() -> list[str]:
    """Every PROVIDER_GROUPS entry that cannot be used, one message each."""
    problems = []
    for name, raw in sorted(settings.PROVIDER_GROUPS.items()):
        try:
            parse_group(name, raw, settings.PROVIDERS)
        except GroupConfigError as exc:
            problems.append(f"Provider group {name!r}: {exc}.")
    return problems


def mock_fallback_groups() -> list[str]:
    """Groups declaring a mock fallback (refused in production)."""
    return sorted(
        name
        for name, raw in settings.PROVIDER_GROUPS.items()
        if isinstance(raw, dict)
        and isinstance(raw.get("fallback"), dict)
        and raw["fallback"].get("type") == "mock"
    )
