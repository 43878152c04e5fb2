from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone

from controlplane.errors.models import ErrorGroup, ErrorRecord
from controlplane.lib.metrics import ERROR_RECORDS
from tests.errors.helpers import assert_envelope

REPORT = {"code": "OCR_TIMEOUT", "message": "ocr took 31 s", "service": "ocr"}


def test_a_client_reports_an_error_and_gets_a_support_id(client_user: Any, api_as: Any) -> None:
    response = api_as(client_user).post(
        "/api/v1/errors/", {**REPORT, "user_message": "We could not read your file."}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    record = ErrorRecord.objects.get(support_id=body["support_id"])
    assert body["message"] == f"We could not read your file. (Reference: {record.support_id})"
    assert (record.code, record.service, record.api_client) == (
        "OCR_TIMEOUT",
        "ocr",
        client_user.username,
    )


def test_a_reported_error_is_counted_and_logged_like_one_raised_here(
    client_user: Any, api_as: Any, caplog: Any
) -> None:
    counted = ERROR_RECORDS.labels("reported")._value  # a code this service does not raise
    before = counted.get()
    api = api_as(client_user)
    with caplog.at_level(logging.INFO, logger="controlplane.errors.records"):
        sid = api.post("/api/v1/errors/", REPORT, format="json").json()["support_id"]
        twin = api.post("/api/v1/errors/", {**REPORT, "support_id": sid}, format="json")
    assert twin.status_code == 200
    logged = [
        r.event_fields
        for r in caplog.records
        if r.name == "controlplane.errors.records" and r.event_fields["support_id"] == sid
    ]
    assert [(line["event"], line["code"], line["service"]) for line in logged] == [
        ("error_recorded", "OCR_TIMEOUT", "ocr")
    ]
    assert counted.get() == before + 1  # the twin is acknowledged, not counted again


def test_a_repeated_support_id_is_stored_once(client_user: Any, api_as: Any) -> None:
    sid = str(uuid.uuid4())
    api = api_as(client_user)
    assert (
        api.post("/api/v1/errors/", {**REPORT, "support_id": sid}, format="json").status_code == 201
    )
    again = api.post("/api/v1/errors/", {**REPORT, "support_id": sid}, format="json")
    assert again.status_code == 200
    assert again.json()["support_id"] == sid
    assert ErrorRecord.objects.filter(support_id=sid).count() == 1
    assert ErrorGroup.objects.get(code="OCR_TIMEOUT").count == 1


def test_a_context_that_is_not_an_object_is_refused(client_user: Any, api_as: Any) -> None:
    response = api_as(client_user).post(
        "/api/v1/errors/", {**REPORT, "context": "nope"}, format="json"
    )
    assert_envelope(response, 400, "INVALID_REQUEST")
    assert "context" in response.json()["error"]["metadata"]["fields"]


def test_support_reads_one_record_with_its_group(
    client_user: Any, support_user: Any, api_as: Any
) -> None:
    sid = api_as(client_user).post("/api/v1/errors/", REPORT, format="json").json()["support_id"]
    api_as(client_user).post("/api/v1/errors/", REPORT, format="json")
    body = api_as(support_user).get(f"/api/v1/errors/{sid}/").json()
    assert body["record"]["support_id"] == sid
    assert body["group"]["count"] == 2
    assert body["spooled"] is False


def test_unknown_support_id_is_a_404_envelope(support_user: Any, api_as: Any) -> None:
    assert_envelope(api_as(support_user).get(f"/api/v1/errors/{uuid.uuid4()}/"), 404, "NOT_FOUND")


def test_list_filters_and_cursor_pagination(
    client_user: Any, support_user: Any, api_as: Any
) -> None:
    client = api_as(client_user)
    for n in range(5):
        client.post("/api/v1/errors/", {**REPORT, "message": f"m{n}"}, format="json")
    client.post("/api/v1/errors/", {**REPORT, "code": "OTHER", "service": "x"}, format="json")
    support = api_as(support_user)

    page = support.get("/api/v1/errors/", {"code": "OCR_TIMEOUT", "page_size": 2}).json()
    seen = [r["support_id"] for r in page["results"]]
    while page["next"]:
        page = support.get(page["next"]).json()
        seen += [r["support_id"] for r in page["results"]]
    assert len(seen) == len(set(seen)) == 5

    assert len(support.get("/api/v1/errors/", {"service": "x"}).json()["results"]) == 1
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    assert support.get("/api/v1/errors/", {"since": later}).json()["results"] == []
    assert_envelope(support.get("/api/v1/errors/", {"since": "yesterday"}), 400, "INVALID_REQUEST")


def test_support_cannot_report_and_clients_cannot_read(
    client_user: Any, support_user: Any, api_as: Any
) -> None:
    assert_envelope(
        api_as(support_user).post("/api/v1/errors/", REPORT, format="json"),
        403,
        "PERMISSION_DENIED",
    )
    assert_envelope(api_as(client_user).get("/api/v1/errors/"), 403, "PERMISSION_DENIED")


def test_a_report_racing_its_twin_is_acknowledged_not_created(
    client_user: Any, api_as: Any, monkeypatch: Any
) -> None:
    """Two reports of one support_id at once (found by the load drill's concurrency probe):
    both miss each other in the existence check; the insert must still decide which one
    created the record, so exactly one answers 201 and the other 200."""
    from types import SimpleNamespace

    from controlplane.errors import api as errors_api

    sid = str(uuid.uuid4())
    api = api_as(client_user)
    assert (
        api.post("/api/v1/errors/", {**REPORT, "support_id": sid}, format="json").status_code == 201
    )
    # The twin's record committed after this request first looked for it.
    looks = [ErrorRecord.objects.none()]

    def filter_after_the_twin(**lookup: Any) -> Any:
        return looks.pop() if looks else ErrorRecord.objects.filter(**lookup)

    missed = SimpleNamespace(objects=SimpleNamespace(filter=filter_after_the_twin))
    monkeypatch.setattr(errors_api, "ErrorRecord", missed)
    again = api.post("/api/v1/errors/", {**REPORT, "support_id": sid}, format="json")
    assert again.status_code == 200
    assert again.json()["support_id"] == sid
    assert ErrorRecord.objects.filter(support_id=sid).count() == 1
    assert ErrorGroup.objects.get(code="OCR_TIMEOUT").count == 1


def test_a_support_id_of_another_record_cannot_be_reported_over(
    client_user: Any, api_as: Any, django_user_model: Any, support_user: Any, client: Any
) -> None:
    from django.contrib.auth.models import Group

    other = django_user_model.objects.create_user("carol-client")
    other.groups.add(Group.objects.get(name="clients"))
    api = api_as(client_user)
    # The support_id of an error this service answered the client with...
    raised = assert_envelope(api.get("/api/v1/no-such-thing/"), 404, "NOT_FOUND")
    taken = api.post("/api/v1/errors/", {**REPORT, "support_id": raised}, format="json")
    assert_envelope(taken, 409, "SUPPORT_ID_TAKEN")
    # ...or of another client's report stays with that record.
    sid = api.post("/api/v1/errors/", REPORT, format="json").json()["support_id"]
    theirs = api_as(other).post("/api/v1/errors/", {**REPORT, "support_id": sid}, format="json")
    assert_envelope(theirs, 409, "SUPPORT_ID_TAKEN")
    assert ErrorRecord.objects.get(support_id=raised).code == "NOT_FOUND"
    assert ErrorRecord.objects.get(support_id=sid).api_client == client_user.username


def test_a_support_id_waiting_in_the_spool_is_not_taken_by_a_report(
    client_user: Any, api_as: Any, settings: Any
) -> None:
    from controlplane.errors import spool

    sid = str(uuid.uuid4())
    spool.append({"support_id": sid, "code": "NOT_FOUND", "api_client": "curl/8"})
    taken = api_as(client_user).post(
        "/api/v1/errors/", {**REPORT, "support_id": sid}, format="json"
    )
    assert_envelope(taken, 409, "SUPPORT_ID_TAKEN")
    assert not ErrorRecord.objects.filter(support_id=sid).exists()  # the replay will win
