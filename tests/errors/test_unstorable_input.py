"""Regression (fuzz drill): bodies with NUL characters or unpaired surrogates.

jsonb refuses \\u0000 and lone surrogates, and psycopg cannot encode a lone
surrogate into a text column. Such a request's error record was refused, then
spooled as if the database were down (and rejected again on replay), so the
support_id the client was given never resolved.
"""

from __future__ import annotations

from typing import Any

from controlplane.errors.exceptions import UserFacingError
from controlplane.errors.models import ErrorRecord
from controlplane.errors.recording import record_error
from controlplane.errors.spool import pending_count
from tests.errors.helpers import assert_envelope, assert_resolves

HOSTILE = '{"\\u0000name": "a\\u0000b", "lone": "\\ud9b3x", "kind": "demo.sleep"}'


def test_a_request_body_with_nul_and_lone_surrogates_leaves_a_resolvable_record(
    client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    response = api_as(client_user).post("/api/v1/jobs/", HOSTILE, content_type="application/json")
    support_id = assert_envelope(response, 400, "INVALID_REQUEST")
    assert pending_count() == 0  # stored, not spooled as if the database were down
    assert_resolves(support_id, support_user, client)
    body = ErrorRecord.objects.get(support_id=support_id).context["request"]["body"]
    assert body == {
        "\\x00name": "a\\x00b",
        "lone": "\\ud9b3x",
        "kind": "demo.sleep",
    }


def test_nul_or_a_lone_surrogate_inside_a_job_payload_is_a_400_not_a_500(
    client_user: Any, api_as: Any
) -> None:
    # The fuzz drill's 500: jsonb refused the payload (DataError) at INSERT time.
    for text in ('"x\\u0000y"', '"\\udc00"'):
        body = '{"kind": "demo.sleep", "payload": {"note": ' + text + "}}"
        response = api_as(client_user).post("/api/v1/jobs/", body, content_type="application/json")
        assert_envelope(response, 400, "INVALID_REQUEST")
        assert "payload" in response.json()["error"]["metadata"]["fields"]


def test_text_fields_with_lone_surrogates_are_stored_escaped(db: Any) -> None:
    error = UserFacingError(technical_message="bad \ud800 value")
    record_error(error, service="svc-\udfff")
    record = ErrorRecord.objects.get(support_id=error.support_id)
    assert (record.service, record.technical_message) == ("svc-\\udfff", "bad \\ud800 value")


def test_short_columns_are_filled_to_their_limit_never_past_it(
    client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    # Review of the fix above: api_client (150 characters) got "…[truncated]" appended
    # after the cut, and an escaped surrogate is six characters long: either overflowed
    # its column, and the record was refused, spooled and rejected again on replay.
    response = api_as(client_user).get(
        "/api/v1/jobs/00000000-0000-4000-8000-000000000000/", HTTP_USER_AGENT="agent/" + "x" * 300
    )
    support_id = assert_envelope(response, 404, "JOB_NOT_FOUND")
    assert pending_count() == 0
    assert_resolves(support_id, support_user, client)
    assert len(ErrorRecord.objects.get(support_id=support_id).api_client) == 150

    error = UserFacingError(technical_message="x")
    record_error(error, service="\ud800" * 100, breaker_name="b" * 99 + "\udfff")
    record = ErrorRecord.objects.get(support_id=error.support_id)
    assert (len(record.service), len(record.breaker_name)) == (100, 100)
    assert record.service.startswith("\\ud800")
