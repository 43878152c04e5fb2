"""What an error record may hold, whatever a client sends (controlplane.errors.bounds)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.db import connection
from django.test import Client

from controlplane.errors.models import ErrorGroup, ErrorRecord
from tests.errors.helpers import assert_envelope, assert_resolves


def flood_headers(count: int = 40, size: int = 8000) -> dict[str, str]:
    return {f"HTTP_X_FLOOD_{n:02d}": secrets.token_urlsafe(size)[:size] for n in range(count)}


def table_bytes() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(pg_column_size(t)) FROM errors_errorrecord t")
        return cursor.fetchone()[0] or 0


def test_each_value_and_the_whole_context_are_capped(
    client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.ERROR_MAX_VALUE_CHARS, settings.ERROR_MAX_CONTEXT_BYTES = 1024, 16 * 1024
    response = api_as(client_user).get("/api/v1/no-such-thing/", **flood_headers())
    record = ErrorRecord.objects.get(support_id=assert_envelope(response, 404, "NOT_FOUND"))
    stored = json.dumps(record.context, ensure_ascii=False)
    assert len(stored.encode()) <= 16 * 1024
    assert not record.compact  # an authenticated client's record keeps its details
    assert record.context["request"]["path"] == "/api/v1/no-such-thing/"


def test_anonymous_requests_past_the_rate_get_compact_records_that_still_resolve(
    support_user: Any, client: Any, settings: Any
) -> None:
    settings.ERROR_FULL_RECORDS_PER_MINUTE = 5
    anonymous = Client()
    shown = [
        assert_envelope(anonymous.get("/api/v1/jobs/", **flood_headers()), 401, "NOT_AUTHENTICATED")
        for _ in range(30)
    ]
    records = {r.support_id.hex: r for r in ErrorRecord.objects.filter(code="NOT_AUTHENTICATED")}
    assert len(records) == 30
    full = [r for r in records.values() if not r.compact]
    assert len(full) == 5  # then compact: identity, code, request line, group; no headers
    compact = [r for r in records.values() if r.compact]
    assert all(r.context == {} and r.api_client == "" and r.anonymous for r in compact)
    assert all(r.request_path == "/api/v1/jobs/" for r in compact)
    assert ErrorGroup.objects.get(code="NOT_AUTHENTICATED").count == 30  # every one counted
    # 30 requests of 320 KB of headers each: the table grew by far less than one of them.
    assert table_bytes() < 5 * 20 * 1024 + 25 * 2 * 1024
    for support_id in shown[-3:]:
        assert_resolves(support_id, support_user, client)


def test_too_many_query_parameters_still_leave_a_record(support_user: Any, client: Any) -> None:
    response = Client().get("/api/v1/jobs/?" + "&".join(["a"] * 1001))
    support_id = assert_envelope(response, 400, "INVALID_REQUEST")
    detail = assert_resolves(support_id, support_user, client)
    assert "query not parsed" in json.dumps(detail["record"]["context"])


def test_a_reported_context_over_the_cap_is_refused_with_413(
    client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.ERROR_MAX_CONTEXT_BYTES = 16 * 1024
    body = {"code": "BIG", "message": "m", "service": "s", "context": {"blob": "x" * 20_000}}
    response = api_as(client_user).post("/api/v1/errors/", body, format="json")
    assert_envelope(response, 413, "CONTEXT_TOO_LARGE")
    assert response.json()["error"]["metadata"] == {"max_bytes": 16 * 1024}
    assert not ErrorRecord.objects.filter(code="BIG").exists()


def test_a_client_reporting_in_a_burst_gets_full_records_up_to_the_rate(
    client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.ERROR_CLIENT_FULL_RECORDS_PER_MINUTE = 10
    api = api_as(client_user)
    for n in range(15):
        body = {"code": "BURST", "message": f"m{n}", "service": "s", "context": {"n": n}}
        assert api.post("/api/v1/errors/", body, format="json").status_code == 201
    records = ErrorRecord.objects.filter(code="BURST")
    assert records.filter(compact=False).count() == 10
    assert all(r.context == {} and r.reported for r in records.filter(compact=True))
    assert ErrorGroup.objects.filter(code="BURST").count() >= 1
