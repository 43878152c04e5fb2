"""An error record names the trace, span and request it happened in, and support can follow it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from controlplane.errors import store
from controlplane.errors.models import ErrorRecord
from tests.errors.helpers import assert_envelope

pytestmark = pytest.mark.django_db

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"
CHANGE = "/admin/errors/errorrecord/{pk}/change/"


def _failed_request(api: Any, **headers: str) -> tuple[Any, ErrorRecord]:
    response = api.get("/api/v1/no-such-thing/", **headers)
    sid = assert_envelope(response, 404, "NOT_FOUND")
    return response, ErrorRecord.objects.get(support_id=sid)


def test_it_stores_the_trace_of_an_incoming_traceparent(client_user: Any, api_as: Any) -> None:
    response, record = _failed_request(api_as(client_user), HTTP_TRACEPARENT=TRACEPARENT)
    assert record.trace_id == TRACE_ID
    # The request's own span, a child of the caller's.
    assert re.fullmatch(r"[0-9a-f]{16}", record.span_id) and record.span_id != PARENT_SPAN
    assert record.request_id == response["X-Request-Id"]


def test_it_generates_ids_without_an_incoming_trace(client_user: Any, api_as: Any) -> None:
    _, first = _failed_request(api_as(client_user))
    _, second = _failed_request(api_as(client_user))
    assert re.fullmatch(r"[0-9a-f]{32}", first.trace_id) and first.trace_id != "0" * 32
    assert first.trace_id != second.trace_id
    assert first.request_id and first.request_id != second.request_id


def test_it_keeps_a_sane_incoming_request_id_on_the_record(client_user: Any, api_as: Any) -> None:
    response, record = _failed_request(api_as(client_user), HTTP_X_REQUEST_ID="lb-7f3a.42")
    assert response["X-Request-Id"] == record.request_id == "lb-7f3a.42"


def test_the_admin_page_shows_the_ids_and_links_the_trace(
    client_user: Any, support_user: Any, api_as: Any, client: Any, settings: Any
) -> None:
    response, record = _failed_request(api_as(client_user), HTTP_TRACEPARENT=TRACEPARENT)
    client.force_login(support_user)

    page = client.get(CHANGE.format(pk=record.pk)).content.decode()
    assert TRACE_ID in page and record.span_id in page and response["X-Request-Id"] in page
    assert "tempo.example" not in page

    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"
    page = client.get(CHANGE.format(pk=record.pk)).content.decode()
    assert f'<a href="https://tempo.example/trace/{TRACE_ID}" rel="noopener">{TRACE_ID}</a>' in page


@pytest.mark.parametrize("which", ["trace", "request"])
def test_support_finds_the_record_by_trace_or_request_id(
    which: str, client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    response, record = _failed_request(api_as(client_user), HTTP_TRACEPARENT=TRACEPARENT)
    _failed_request(api_as(client_user))  # another trace, another request: not listed
    client.force_login(support_user)
    pasted = TRACE_ID if which == "trace" else response["X-Request-Id"]
    page = client.get("/admin/errors/errorrecord/", {"q": pasted})
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [record]
    if which == "request":  # a UUID that is no support id: said so, since callers choose it
        said = [str(m) for m in page.context["messages"]]
        assert any("No error record with support id" in m and "request id" in m for m in said)


@pytest.mark.parametrize(
    "template",
    ["https://tempo.example/trace/{trace}", "tempo.example/{trace_id}", "https://x/{trace_id"],
)
def test_a_bad_trace_url_template_is_refused_at_start_up(template: str, settings: Any) -> None:
    settings.TRACE_URL_TEMPLATE = template
    with pytest.raises(SystemCheckError, match=r"errors\.E001"):
        call_command("check")


def test_a_spooled_record_keeps_its_ids_through_the_replay(
    client_user: Any, api_as: Any, dead_database: None, settings: Any
) -> None:
    response = api_as(client_user).get("/api/v1/no-such-thing/", HTTP_TRACEPARENT=TRACEPARENT)
    sid = assert_envelope(response, 404, "NOT_FOUND")
    (line,) = settings.ERROR_SPOOL_PATH.read_text().splitlines()
    spooled = json.loads(line)
    assert spooled["trace_id"] == TRACE_ID
    assert spooled["request_id"] == response["X-Request-Id"]

    store.set_store(store.Store())  # the database is back
    assert store.replay_spool().inserted == 1
    record = ErrorRecord.objects.get(support_id=sid)
    assert (record.trace_id, record.span_id, record.request_id) == (
        TRACE_ID,
        spooled["span_id"],
        response["X-Request-Id"],
    )


def test_the_api_gives_support_the_ids(client_user: Any, support_user: Any, api_as: Any) -> None:
    response, record = _failed_request(api_as(client_user), HTTP_TRACEPARENT=TRACEPARENT)
    detail = api_as(support_user).get(f"/api/v1/errors/{record.support_id}/").json()["record"]
    assert (detail["trace_id"], detail["span_id"], detail["request_id"]) == (
        TRACE_ID,
        record.span_id,
        response["X-Request-Id"],
    )
