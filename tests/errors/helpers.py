from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from tests.conftest import token_client


def assert_envelope(response: Any, status: int, code: str) -> str:
    """The response is our error envelope; returns its support_id."""
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "type", "message", "metadata", "support_id"}
    assert error["code"] == code
    assert error["message"].endswith(f"(Reference: {error['support_id']})")
    for leak in ("Traceback", 'File "', "SELECT ", "psycopg", "/work/"):
        assert leak not in error["message"]
    return error["support_id"]


def assert_resolves(support_id: str, support: User, client: Any) -> dict:
    """The support_id is findable through the API and the admin search."""
    response = token_client(support).get(f"/api/v1/errors/{support_id}/")
    assert response.status_code == 200, response.content
    client.force_login(support)
    found = client.get("/admin/errors/errorrecord/", {"q": f"(Reference: {support_id})"})
    assert found.status_code == 302
    assert found["Location"].startswith("/admin/errors/errorrecord/")
    return response.json()
