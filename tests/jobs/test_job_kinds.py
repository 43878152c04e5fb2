"""What each built-in job kind accepts, and who may create it."""

from __future__ import annotations

from typing import Any

from tests.errors.helpers import assert_envelope


def test_http_request_jobs_only_reach_configured_providers(
    clean_jobs: None, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.PROVIDERS = {"ocr": {"base_url": "http://127.0.0.1:9", "mode": "real"}}
    api = api_as(client_user)
    raw = api.post(
        "/api/v1/jobs/",
        {
            "kind": "http.request",
            "payload": {"base_url": "http://169.254.169.254", "path": "/latest/meta-data/"},
        },
        format="json",
    )
    assert_envelope(raw, 422, "UNKNOWN_PROVIDER")
    sneaky = api.post(
        "/api/v1/jobs/",
        {"kind": "http.request", "payload": {"provider": "ocr", "path": "//169.254.169.254/x"}},
        format="json",
    )
    assert_envelope(sneaky, 422, "INVALID_PATH")
    ok = api.post(
        "/api/v1/jobs/",
        {"kind": "http.request", "payload": {"provider": "ocr", "path": "/v1/parse"}},
        format="json",
    )
    assert ok.status_code == 201


def test_ops_only_job_kinds(clean_jobs: None, client_user: Any, ops_user: Any, api_as: Any) -> None:
    refused = api_as(client_user).post("/api/v1/jobs/", {"kind": "lookups.warm"}, format="json")
    assert_envelope(refused, 403, "JOB_KIND_FORBIDDEN")
    assert (
        api_as(ops_user).post("/api/v1/jobs/", {"kind": "lookups.warm"}, format="json").status_code
        == 201
    )
