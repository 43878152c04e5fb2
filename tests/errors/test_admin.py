"""Support staff find a record by the reference a customer reads them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from controlplane.errors.admin import parse_support_query
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.models import ErrorRecord
from controlplane.errors.recording import record_error

CHANGELIST = "/admin/errors/errorrecord/"


@pytest.fixture
def record(db: Any) -> ErrorRecord:
    try:
        raise KeyError("missing-key")
    except KeyError as exc:
        error = InternalServerError(
            technical_message="lookup failed for password=hunter2",
            context={"job": {"api_key": "k", "step": 3}},
            original=exc,
        )
    recorded = record_error(error, service="parser", breaker_name="parser", breaker_state="open")
    return ErrorRecord.objects.get(support_id=recorded.support_id)


@pytest.mark.parametrize(
    "pasted",
    [
        "{sid}",
        "{hex}",
        "  {upper}  ",
        "Something went wrong on our side. (Reference: {sid})",
    ],
)
def test_pasting_a_full_uuid_lands_on_the_record(
    pasted: str, record: ErrorRecord, support_user: Any, client: Any
) -> None:
    sid = str(record.support_id)
    query = pasted.format(sid=sid, hex=sid.replace("-", ""), upper=sid.upper())
    client.force_login(support_user)
    response = client.get(CHANGELIST, {"q": query})
    assert response.status_code == 302
    assert response["Location"] == f"{CHANGELIST}{record.pk}/change/"


def test_a_prefix_of_eight_hex_characters_finds_it(
    record: ErrorRecord, support_user: Any, client: Any
) -> None:
    client.force_login(support_user)
    prefix = str(record.support_id)[:8]
    response = client.get(CHANGELIST, {"q": prefix})
    assert response.status_code == 200
    assert str(record.support_id) in response.content.decode()
    assert parse_support_query("abc1234")[0] == "code"  # too short for a prefix


def test_the_record_page_tells_the_whole_story(
    record: ErrorRecord, support_user: Any, client: Any
) -> None:
    client.force_login(support_user)
    html = client.get(f"{CHANGELIST}{record.pk}/change/").content.decode()
    for expected in (
        f"(Reference: {record.support_id})",
        "lookup failed for password=[Filtered]",
        "KeyError",
        "missing-key",
        "&quot;api_key&quot;: &quot;[Filtered]&quot;",
        "parser",
        "open",
        "1 occurrences",
    ):
        assert expected in html, expected
    assert "hunter2" not in html


def test_support_can_read_but_not_change_or_delete(
    record: ErrorRecord, support_user: Any, client: Any
) -> None:
    client.force_login(support_user)
    page = client.get(f"{CHANGELIST}{record.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert client.post(f"{CHANGELIST}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{CHANGELIST}{record.pk}/change/", {"code": "X"}).status_code == 403
    assert ErrorRecord.objects.filter(pk=record.pk, code=record.code).exists()


def test_the_list_never_counts_the_whole_table(
    record: ErrorRecord, support_user: Any, client: Any
) -> None:
    client.force_login(support_user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    # A bounded count only: LIMIT inside, never a bare COUNT(*) over errors_errorrecord.
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_clients_without_staff_cannot_open_the_admin(client_user: Any, client: Any) -> None:
    client.force_login(client_user)
    assert client.get(CHANGELIST).status_code == 302  # to the login page


def test_the_reference_wins_over_other_uuids_in_a_pasted_message(
    client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    missing = uuid.uuid4()
    error = api_as(client_user).get(f"/api/v1/jobs/{missing}/").json()["error"]
    assert str(missing) in error["message"]  # "No job <uuid>. (Reference: <sid>)"
    client.force_login(support_user)
    landed = client.get(CHANGELIST, {"q": error["message"]}, follow=True)
    assert landed.redirect_chain, "no redirect to the record"
    assert error["support_id"] in landed.content.decode()


def test_several_uuids_without_a_reference_list_every_record_they_name(
    client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    api = api_as(client_user)
    first, second = (
        api.get("/api/v1/no-such-thing/").json()["error"]["support_id"] for _ in range(2)
    )
    client.force_login(support_user)
    page = client.get(CHANGELIST, {"q": f"{first} and then {second}"}).content.decode()
    assert first in page and second in page


@pytest.mark.parametrize("term", ["a" * 33, "a" * 35, "0123-4567-89ab-cdef-0123-4567-89ab-cdef-01"])
def test_a_search_longer_than_a_uuid_is_answered_not_a_500(
    support_user: Any, client: Any, term: str
) -> None:
    client.force_login(support_user)
    assert client.get(CHANGELIST, {"q": term}).status_code == 200
