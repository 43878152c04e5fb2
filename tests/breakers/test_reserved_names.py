"""Breakers this service runs itself are not for remote outcome reports or permits."""

from __future__ import annotations

from typing import Any

from tests.errors.helpers import assert_envelope


def test_clients_cannot_drive_this_services_own_breakers(
    fresh_name: str, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.PROVIDERS = {"openai": {"mode": "mock"}}
    api = api_as(client_user)
    for name in ("lookups-db", "openai"):
        response = api.post(
            f"/api/v1/breakers/{name}/outcomes/", {"outcome": "failure"}, format="json"
        )
        assert_envelope(response, 403, "BREAKER_RESERVED")
        assert_envelope(api.get(f"/api/v1/breakers/{name}/permit/"), 403, "BREAKER_RESERVED")
