from __future__ import annotations

from typing import Any

import pytest
from django.urls import path
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from controlplane.lib.permissions import IsClient, IsOps, IsSupport


class OpsOnly(APIView):
    permission_classes = [IsOps]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


class SupportOnly(OpsOnly):
    permission_classes = [IsSupport]


class ClientsOnly(OpsOnly):
    permission_classes = [IsClient]


urlpatterns = [
    path("ops-only/", OpsOnly.as_view()),
    path("support-only/", SupportOnly.as_view()),
    path("clients-only/", ClientsOnly.as_view()),
]


def assert_envelope(response: Any, status: int, code: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "type", "message", "metadata", "support_id"}
    assert error["message"].endswith(f"(Reference: {error['support_id']})")


@pytest.mark.django_db
def test_it_answers_401_in_the_envelope_without_a_token() -> None:
    response = APIClient().get("/api/v1/")
    assert_envelope(response, 401, "NOT_AUTHENTICATED")
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_it_answers_401_for_a_wrong_token() -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_envelope(api.get("/api/v1/"), 401, "AUTHENTICATION_FAILED")


def test_it_lets_a_client_token_in(client_user: Any, api_as: Any) -> None:
    assert api_as(client_user).get("/api/v1/").status_code == 200


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("/ops-only/", {"ops"}),
        ("/support-only/", {"support", "ops"}),
        ("/clients-only/", {"clients", "ops"}),
    ],
)
def test_it_checks_groups(
    url: str,
    allowed: set[str],
    client_user: Any,
    support_user: Any,
    ops_user: Any,
    nobody_user: Any,
    api_as: Any,
) -> None:
    users = {"clients": client_user, "support": support_user, "ops": ops_user, "none": nobody_user}
    for group, user in users.items():
        response = api_as(user).get(url)
        if group in allowed:
            assert response.status_code == 200, (url, group)
        else:
            assert_envelope(response, 403, "PERMISSION_DENIED")


@pytest.mark.urls(__name__)
def test_superusers_pass_every_group_check(django_user_model: Any, api_as: Any) -> None:
    root = django_user_model.objects.create_superuser("root", password="pw")
    assert api_as(root).get("/ops-only/").status_code == 200
