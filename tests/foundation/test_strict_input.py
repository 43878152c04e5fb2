"""Regression tests for what the fuzz drill (schemathesis) found in input handling.

Each request below is outside the published schema and used to be accepted
(coerced or ignored) or answered with a status the schema does not promise.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.errors.helpers import assert_envelope, assert_resolves


def fields_of(response: Any) -> dict:
    return response.json()["error"]["metadata"]["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "failure", "duration_ms": "1"}, "duration_ms"),  # was coerced to 1.0
        ({"outcome": 1}, "outcome"),
        ({"outcome": "failure", "extra": True}, "extra"),  # was ignored
    ],
)
def test_breaker_outcomes_take_json_as_typed(
    client_user: Any, api_as: Any, body: dict, field: str
) -> None:
    response = api_as(client_user).post("/api/v1/breakers/partner-x/outcomes/", body)
    assert_envelope(response, 400, "INVALID_REQUEST")
    assert field in fields_of(response)


def client_breaker(client_user: Any, api_as: Any) -> str:
    """A breaker the client created (committed: breakers are written on a side connection,
    so these tests run transactional)."""
    name = f"partner-{uuid.uuid4().hex[:8]}"
    created = api_as(client_user).post(f"/api/v1/breakers/{name}/outcomes/", {"outcome": "success"})
    assert created.status_code == 200, created.content
    return name


def test_a_reason_that_is_not_a_string_is_refused(
    transactional_db: Any, client_user: Any, ops_user: Any, api_as: Any
) -> None:
    name = client_breaker(client_user, api_as)
    response = api_as(ops_user).post(f"/api/v1/breakers/{name}/force-open/", {"reason": 0})
    assert_envelope(response, 400, "INVALID_REQUEST")
    assert "reason" in fields_of(response)


def test_type_errors_are_listed_with_the_other_fields_problems(
    client_user: Any, api_as: Any
) -> None:
    response = api_as(client_user).post("/api/v1/errors/", {"code": "X", "context": [1]})
    assert set(fields_of(response)) == {"context", "message", "service"}


def test_a_misspelt_field_is_refused_not_ignored(client_user: Any, api_as: Any) -> None:
    body = {"kind": "demo.sleep", "timeout_second": 5}
    response = api_as(client_user).post("/api/v1/jobs/", body)
    assert_envelope(response, 400, "INVALID_REQUEST")
    assert fields_of(response) == {"timeout_second": ["Unknown field."]}


@pytest.mark.parametrize("query", ["status=", "kind=", "kind=0.5", "status=paused"])
def test_job_filters_refuse_blank_and_malformed_values(
    client_user: Any, api_as: Any, query: str
) -> None:
    assert_envelope(api_as(client_user).get(f"/api/v1/jobs/?{query}"), 400, "INVALID_REQUEST")


def test_error_filters_refuse_a_blank_date(support_user: Any, api_as: Any) -> None:
    response = api_as(support_user).get("/api/v1/errors/?until=")
    assert_envelope(response, 400, "INVALID_REQUEST")


def test_forms_are_not_accepted_by_the_api(client_user: Any, api_as: Any) -> None:
    # multipart turned {} into the string "{}", which a list field then accepted
    response = api_as(client_user).post(
        "/api/v1/lookups/batch/", {"slugs": "{}"}, format="multipart"
    )
    assert_envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_too_long_idempotency_key_is_a_400(client_user: Any, api_as: Any) -> None:
    response = api_as(client_user).post(
        "/api/v1/jobs/", {"kind": "demo.sleep"}, HTTP_IDEMPOTENCY_KEY="k" * 201
    )
    assert_envelope(response, 400, "INVALID_IDEMPOTENCY_KEY")


def test_batch_limits_are_in_the_schema_and_enforced(client_user: Any, api_as: Any) -> None:
    from django.conf import settings

    api = api_as(client_user)
    assert_envelope(api.post("/api/v1/lookups/batch/", {"slugs": []}), 400, "INVALID_REQUEST")
    too_many = {"slugs": ["a"] * (settings.LOOKUP_BATCH_MAX + 1)}
    assert_envelope(api.post("/api/v1/lookups/batch/", too_many), 400, "INVALID_REQUEST")


def test_the_schema_states_the_rules_the_views_enforce(client: Any) -> None:
    from controlplane.breakers.circuit import NAME
    from jobs.registry import kinds

    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schemas = document["components"]["schemas"]
    job_input = schemas["JobInputRequest"]
    assert job_input["additionalProperties"] is False
    assert job_input["properties"]["kind"]["enum"] == kinds()
    assert "maximum" in job_input["properties"]["timeout_seconds"]
    assert job_input["properties"]["deadline_seconds"]["maximum"] == 86400  # JOB_MAX_DEADLINE
    assert schemas["ErrorReportInputRequest"]["properties"]["code"]["pattern"]
    assert schemas["BatchInputRequest"]["properties"]["slugs"]["minItems"] == 1
    breaker = document["paths"]["/api/v1/breakers/{name}/"]["get"]["parameters"][0]["schema"]
    assert breaker["pattern"] == NAME.pattern
    assert "multipart/form-data" not in str(document["paths"]["/api/v1/jobs/"]["post"])


@pytest.mark.parametrize("depth", [65, 900, 100_000])
def test_deeply_nested_json_is_a_400_not_a_recursion_error(
    client_user: Any, support_user: Any, api_as: Any, client: Any, depth: int
) -> None:
    body = '{"kind": "demo.sleep", "payload": {"a": ' + "[" * depth + "]" * depth + "}}"
    response = api_as(client_user).post("/api/v1/jobs/", body, content_type="application/json")
    sid = assert_envelope(response, 400, "PARSE_ERROR")  # was a 500 from depth ~900 on
    assert_resolves(sid, support_user, client)


def test_json_nested_within_the_limit_is_accepted(client_user: Any, api_as: Any) -> None:
    from controlplane.lib.parsers import MAX_JSON_DEPTH

    inner = MAX_JSON_DEPTH - 3  # the body object, payload and "a" take three levels
    body = '{"kind": "demo.sleep", "payload": {"a": ' + "[" * inner + "]" * inner + "}}"
    response = api_as(client_user).post("/api/v1/jobs/", body, content_type="application/json")
    assert response.status_code == 201, response.content


def test_max_length_counts_what_was_sent_not_what_is_left_after_trimming(
    transactional_db: Any, client_user: Any, ops_user: Any, api_as: Any
) -> None:
    # make drills (fuzz, seed 1308133023): a 1,000-character reason padded with spaces and
    # \x1c/\x85 (whitespace to Python) passed after DRF trimmed it; the schema says 1000.
    name = client_breaker(client_user, api_as)
    reason = " \x1c\x85" + "*" * 999
    response = api_as(ops_user).post(f"/api/v1/breakers/{name}/reset/", {"reason": reason})
    assert_envelope(response, 400, "INVALID_REQUEST")
    assert "reason" in fields_of(response)


@pytest.mark.django_db
def test_the_schema_calls_blank_exactly_what_the_api_trims_to_blank(
    client: Any, client_user: Any, api_as: Any
) -> None:
    # make drills (fuzz, seed 1132841758): an error report with "type": "\x1f" matched the
    # schema (\s in its regex does not cover U+001C-U+001F) and got 400 "may not be blank"
    # (Python's strip() does). The schema now spells out Python's whitespace.
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    props = document["components"]["schemas"]["ErrorReportInputRequest"]["properties"]
    non_blank = ecma_regex(props["type"]["pattern"])
    report = {"code": "OCR_TIMEOUT", "message": "ocr took 31 s", "service": "ocr"}
    api = api_as(client_user)
    for space in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u200a\u2028\u2029\u3000":
        assert space.isspace() and non_blank.fullmatch(space) is None, repr(space)
        response = api.post("/api/v1/errors/", {**report, "type": space}, format="json")
        assert_envelope(response, 400, "INVALID_REQUEST")
        assert "type" in fields_of(response)
    assert not "\ufeff".isspace() and non_blank.fullmatch("\ufeff")  # not blank to either
    kept = api.post("/api/v1/errors/", {**report, "type": "\ufeff"}, format="json")
    assert kept.status_code == 201, kept.content


# The schema's patterns are ECMA-262 regexes, as schemathesis reads them; in those, \s is
# this set (WhiteSpace and LineTerminator), not Python's.
ECMA_SPACE = "\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with ECMA's meaning of \\s (used inside a character class)."""
    return re.compile(pattern.replace("\\s", ECMA_SPACE))
