"""What each built-in job kind accepts, and who may create it."""

from __future__ import annotations

from typing import Any

from tests.errors.helpers import assert_envelope


def http_job(api: Any, **payload: Any) -> Any:
    return api.post("/api/v1/jobs/", {"kind": "http.request", "payload": payload}, format="json")


def test_http_request_jobs_only_reach_configured_providers(
    clean_jobs: None, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.PROVIDERS = {
        "ocr": {"base_url": "http://127.0.0.1:9", "client_calls": ["POST /v1/parse"]}
    }
    api = api_as(client_user)
    raw = http_job(api, base_url="http://169.254.169.254", path="/latest/meta-data/")
    assert_envelope(raw, 422, "UNKNOWN_PROVIDER")
    for sneaky in ("//169.254.169.254/x", "/v1/parse/../../admin", "/v1/%2e%2e/admin", "/a\\b"):
        assert_envelope(http_job(api, provider="ocr", path=sneaky), 422, "INVALID_PATH")
    ok = http_job(api, provider="ocr", method="POST", path="/v1/parse?lang=en")
    assert ok.status_code == 201, ok.content


def test_http_request_jobs_reach_only_the_calls_a_provider_allows_clients(
    clean_jobs: None, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.PROVIDERS = {
        "ocr": {
            "base_url": "http://127.0.0.1:9",
            "health_path": "/ping",
            "client_calls": ["POST /v1/parse", "GET /v1/jobs/*"],
        },
        "bare": {"base_url": "http://127.0.0.1:9", "health_path": "/ping"},
    }
    api = api_as(client_user)
    allowed = [
        ("ocr", "POST", "/v1/parse"),
        ("ocr", "GET", "/v1/jobs/42/result"),
        ("bare", "GET", "/ping"),
    ]
    for provider, method, path in allowed:
        response = http_job(api, provider=provider, method=method, path=path)
        assert response.status_code == 201, (provider, method, path, response.content)
    refused = [
        ("ocr", "GET", "/v1/parse"),
        ("ocr", "DELETE", "/v1/jobs/42"),
        ("ocr", "POST", "/v1/admin/keys"),
        ("bare", "POST", "/v1/parse"),
        ("bare", "GET", "/v1/anything"),
    ]
    for provider, method, path in refused:
        response = http_job(api, provider=provider, method=method, path=path)
        assert_envelope(response, 403, "PROVIDER_CALL_FORBIDDEN")


def test_ops_only_job_kinds(clean_jobs: None, client_user: Any, ops_user: Any, api_as: Any) -> None:
    refused = api_as(client_user).post("/api/v1/jobs/", {"kind": "lookups.warm"}, format="json")
    assert_envelope(refused, 403, "JOB_KIND_FORBIDDEN")
    assert (
        api_as(ops_user).post("/api/v1/jobs/", {"kind": "lookups.warm"}, format="json").status_code
        == 201
    )


def test_http_request_jobs_name_one_provider_or_one_group(
    clean_jobs: None, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.PROVIDERS = {
        "a": {"base_url": "http://127.0.0.1:9", "client_calls": ["POST /v1/chat", "GET /v1/*"]},
        "b": {"base_url": "http://127.0.0.1:9", "client_calls": ["POST /v1/chat"]},
    }
    settings.PROVIDER_GROUPS = {"llm": {"providers": ["a", "b"]}}
    api = api_as(client_user)
    ok = http_job(api, group="llm", method="POST", path="/v1/chat")
    assert ok.status_code == 201, ok.content
    neither = http_job(api, method="POST", path="/v1/chat")
    assert_envelope(neither, 422, "UNKNOWN_PROVIDER")
    assert neither.json()["error"]["metadata"]["groups"] == ["llm"]
    both = http_job(api, provider="a", group="llm", method="POST", path="/v1/chat")
    assert_envelope(both, 422, "PROVIDER_AND_GROUP_CONFLICT")
    assert_envelope(http_job(api, group="nope", path="/v1/chat"), 422, "UNKNOWN_PROVIDER_GROUP")
    # Every member must allow the call: "b" does not allow GET /v1/models.
    refused = http_job(api, group="llm", method="GET", path="/v1/models")
    assert_envelope(refused, 403, "PROVIDER_CALL_FORBIDDEN")
    assert refused.json()["error"]["metadata"]["provider"] == "b"
