"""Every kind of error response: envelope, status, and a support_id that resolves."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.urls import include, path
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from controlplane.errors.exceptions import ConflictError
from controlplane.errors.models import ErrorRecord
from controlplane.urls import handler400, handler403, handler404, handler500  # noqa: F401
from tests.errors.helpers import assert_envelope, assert_resolves


class Boom(APIView):
    def get(self, request: Any) -> Response:
        raise RuntimeError("secret internals: SELECT * FROM users at db-7.internal")


class Conflicting(APIView):
    def post(self, request: Any) -> Response:
        with transaction.atomic():
            ErrorRecord.objects.none()  # any work in the request's transaction
            raise ConflictError("Already done.", code="ALREADY_DONE")


class AlwaysThrottled(BaseThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        return False

    def wait(self) -> float:
        return 30.0


class Throttled(APIView):
    throttle_classes = [AlwaysThrottled]

    def get(self, request: Any) -> Response:
        return Response({})


def django_boom(request: Any) -> Any:
    raise ValueError("plain Django view failure")


urlpatterns = [
    path("api/v1/test/boom/", Boom.as_view()),
    path("api/v1/test/conflict/", Conflicting.as_view()),
    path("api/v1/test/throttled/", Throttled.as_view()),
    path("plain/boom/", django_boom),
    path("", include("controlplane.urls")),
]
pytestmark = pytest.mark.urls(__name__)


def test_bad_token(support_user: Any, client: Any) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token wrong")
    response = api.get("/api/v1/errors/")
    assert response["WWW-Authenticate"] == "Token"
    sid = assert_envelope(response, 401, "AUTHENTICATION_FAILED")
    assert_resolves(sid, support_user, client)


def test_no_token(support_user: Any, client: Any) -> None:
    sid = assert_envelope(APIClient().get("/api/v1/errors/"), 401, "NOT_AUTHENTICATED")
    assert_resolves(sid, support_user, client)


def test_unknown_api_url(client_user: Any, support_user: Any, api_as: Any, client: Any) -> None:
    sid = assert_envelope(api_as(client_user).get("/api/v1/no-such-thing/"), 404, "NOT_FOUND")
    assert_resolves(sid, support_user, client)


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_every_unknown_api_path_answers_the_envelope(
    debug: bool, settings: Any, client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    """Also with DEBUG on (`make run`), where Django would show its HTML debug page; also
    without a token and for any method (a 404, not a 401 or a CSRF failure)."""
    settings.DEBUG = debug
    answers = [
        api_as(client_user).get("/api/v1/no-such-thing/"),
        api_as(client_user).delete("/api/v1/jobs/not-a-uuid/"),
        APIClient().get("/api/no-such-version/"),
        APIClient().post("/api/v1/no-such-thing/", {"a": 1}, format="json"),
    ]
    support_ids = [assert_envelope(answer, 404, "NOT_FOUND") for answer in answers]
    for sid in support_ids:
        assert_resolves(sid, support_user, client)


def test_with_debug_on_405_and_500_answer_the_envelope(
    settings: Any, client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    settings.DEBUG = True
    api = api_as(client_user)
    wrong_method = assert_envelope(api.put("/api/v1/errors/", {}), 405, "METHOD_NOT_ALLOWED")
    crash = api.get("/api/v1/test/boom/")
    assert "secret internals" not in crash.content.decode()
    for sid in (wrong_method, assert_envelope(crash, 500, "INTERNAL_ERROR")):
        assert_resolves(sid, support_user, client)


def test_with_debug_on_a_disallowed_host_answers_the_envelope(
    settings: Any, support_user: Any, client: Any
) -> None:
    """Django refuses the Host before any view, with its HTML debug page when DEBUG is on."""
    settings.DEBUG = True
    refused = APIClient().get("/api/v1/lookups/stats/", HTTP_HOST="evil.example")
    assert_resolves(assert_envelope(refused, 400, "INVALID_REQUEST"), support_user, client)
    page = APIClient().get("/admin/", HTTP_HOST="evil.example")  # not the API: Django's page
    assert page.status_code == 400 and "text/html" in page["Content-Type"]


def test_with_debug_on_drf_pages_for_a_browser_are_left_alone(settings: Any) -> None:
    """The browsable API renders its own errors as HTML for a browser: same status, same
    support_id, not a second record."""
    settings.DEBUG = True
    answer = APIClient().get("/api/v1/jobs/", HTTP_ACCEPT="text/html")
    assert answer.status_code == 401
    assert answer["Content-Type"].startswith("text/html")


def test_an_api_path_without_its_trailing_slash(client_user: Any, api_as: Any) -> None:
    """GET is redirected, as everywhere on the site; other methods get the 404 envelope
    (a redirect would lose their body)."""
    api = api_as(client_user)
    moved = api.get("/api/v1/lookups/stats?x=1")
    assert (moved.status_code, moved["Location"]) == (301, "/api/v1/lookups/stats/?x=1")
    assert_envelope(api.post("/api/v1/errors", {"code": "X"}, format="json"), 404, "NOT_FOUND")
    assert_envelope(api.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")


def test_malformed_json(client_user: Any, support_user: Any, api_as: Any, client: Any) -> None:
    response = api_as(client_user).post(
        "/api/v1/errors/", data='{"code": ', content_type="application/json"
    )
    sid = assert_envelope(response, 400, "PARSE_ERROR")
    assert_resolves(sid, support_user, client)


def test_wrong_method(client_user: Any, support_user: Any, api_as: Any, client: Any) -> None:
    sid = assert_envelope(api_as(client_user).put("/api/v1/errors/", {}), 405, "METHOD_NOT_ALLOWED")
    assert_resolves(sid, support_user, client)


def test_validation_failure_lists_fields(
    client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    response = api_as(client_user).post(
        "/api/v1/errors/", {"code": "lower case", "context": [1, 2]}, format="json"
    )
    sid = assert_envelope(response, 400, "INVALID_REQUEST")
    fields = response.json()["error"]["metadata"]["fields"]
    assert set(fields) == {"code", "context", "message", "service"}
    assert_resolves(sid, support_user, client)


def test_wrong_group(client_user: Any, support_user: Any, api_as: Any, client: Any) -> None:
    sid = assert_envelope(api_as(client_user).get("/api/v1/errors/"), 403, "PERMISSION_DENIED")
    assert_resolves(sid, support_user, client)


def test_unhandled_exception_is_recorded_not_shown(
    client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    response = api_as(client_user).get("/api/v1/test/boom/")
    sid = assert_envelope(response, 500, "INTERNAL_ERROR")
    assert "secret internals" not in response.content.decode()
    story = assert_resolves(sid, support_user, client)["record"]
    assert story["exception_type"] == "builtins.RuntimeError"
    assert "secret internals" in story["technical_message"]
    assert 'raise RuntimeError("secret internals' in story["traceback"]
    assert story["username"] == client_user.username


@pytest.mark.made_up_error_codes
def test_record_survives_the_request_rollback(
    client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    response = api_as(client_user).post("/api/v1/test/conflict/")
    sid = assert_envelope(response, 409, "ALREADY_DONE")
    assert_resolves(sid, support_user, client)


def test_throttled(client_user: Any, support_user: Any, api_as: Any, client: Any) -> None:
    response = api_as(client_user).get("/api/v1/test/throttled/")
    sid = assert_envelope(response, 429, "RATE_LIMITED")
    assert response["Retry-After"] == "30"
    assert_resolves(sid, support_user, client)


@pytest.mark.django_db
def test_django_404_page_shows_the_reference(support_user: Any, client: Any) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    record = ErrorRecord.objects.get(request_path="/no/such/page/")
    assert f'id="support-reference">{record.support_id}<' in html
    assert_resolves(str(record.support_id), support_user, client)


@pytest.mark.django_db
def test_django_500_page_shows_the_reference(support_user: Any) -> None:
    from django.test import Client

    response = Client(raise_request_exception=False).get("/plain/boom/")
    assert response.status_code == 500
    record = ErrorRecord.objects.get(request_path="/plain/boom/")
    assert record.exception_type == "builtins.ValueError"
    assert str(record.support_id) in response.content.decode()
    assert "plain Django view failure" not in response.content.decode()


def test_each_recorded_error_is_logged_once_as_an_event(
    client_user: Any, api_as: Any, caplog: Any
) -> None:
    with caplog.at_level("INFO", logger="controlplane.errors.records"):
        response = api_as(client_user).get("/api/v1/no-such-thing/")
    lines = [r.event_fields for r in caplog.records if r.name == "controlplane.errors.records"]
    assert len(lines) == 1
    assert lines[0]["support_id"] == response.json()["error"]["support_id"]
    assert lines[0]["code"] == "NOT_FOUND"
    assert lines[0]["path"] == "/api/v1/no-such-thing/"
