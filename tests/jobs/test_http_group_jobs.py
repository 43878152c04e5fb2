"""http.request jobs against a provider group, run by a real worker against real upstreams
on 127.0.0.1: failover, the declared fallback, the documented failure, and one
idempotency key across every attempt of a POST."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from controlplane.errors.models import ErrorRecord
from controlplane.resilience import providers
from jobs.models import Job
from tests.breakers.conftest import fresh_name  # noqa: F401
from tests.jobs.conftest import wait_status
from tests.resilience.flaky_server import Script, flaky_server
from tests.resilience.groups import provider_entry

pytestmark = pytest.mark.slow

FAST_RETRIES = {"RETRY_INITIAL_DELAY": "0.01", "RETRY_MAX_DELAY": "0.02", "RETRY_JITTER": "none"}
STATIC = {"type": "static", "status": 200, "json": {"answer": "later"}}


@pytest.fixture
def group_stack(
    fresh_name: str,  # noqa: F811
    settings: Any,
    start_worker: Any,
) -> Iterator[Callable[..., list[str]]]:
    """Real upstreams as providers of group "llm", configured here (for validation at
    creation) and in a worker started with the same settings."""
    stack = ExitStack()

    def start(
        *scripts: Script,
        per_provider: list[dict[str, Any]] | None = None,
        fallback: dict[str, Any] | None = None,
    ) -> list[str]:
        names = [f"{fresh_name}-{index}" for index in range(len(scripts))]
        options = per_provider or [{} for _ in scripts]
        settings.PROVIDERS = {
            name: provider_entry(stack.enter_context(flaky_server(script)), **extra)
            for name, script, extra in zip(names, scripts, options, strict=True)
        }
        group: dict[str, Any] = {"providers": names}
        if fallback:
            group["fallback"] = fallback
        settings.PROVIDER_GROUPS = {"llm": group}
        providers._clients.clear()
        start_worker(
            PROVIDERS=json.dumps(settings.PROVIDERS),
            PROVIDER_GROUPS=json.dumps(settings.PROVIDER_GROUPS),
            **FAST_RETRIES,
        )
        return names

    with stack:
        yield start
    providers._clients.clear()


def create(api: Any, payload: dict[str, Any], max_attempts: int = 1) -> str:
    body = {"kind": "http.request", "payload": payload, "max_attempts": max_attempts}
    response = api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_a_group_job_fails_over_and_names_both_providers(
    group_stack: Any, client_user: Any, api_as: Any
) -> None:
    failing, healthy = Script([(500, {})]), Script([(200, {})])
    first, second = group_stack(failing, healthy, per_provider=[{"max_attempts": 2}, {}])
    job_id = create(api_as(client_user), {"group": "llm", "method": "GET", "path": "/v1/models"})
    job = wait_status(job_id, {"succeeded", "failed"})
    assert job.status == "succeeded", job.error_message
    assert (failing.requests, healthy.requests) == (2, 1)
    body = api_as(client_user).get(f"/api/v1/jobs/{job_id}/").json()
    assert body["result"]["status"] == 200
    assert body["result"]["provider"] == second
    assert body["result"]["tried"] == [
        {
            "provider": first,
            "outcome": "failed",
            "code": f"{first.upper().replace('-', '_')}_SERVER_ERROR",
            "attempts": 2,
        }
    ]
    assert body["result"]["fallback_used"] is False


def test_with_both_down_a_static_fallback_answers(
    group_stack: Any, client_user: Any, api_as: Any
) -> None:
    group_stack(Script([(503, {})]), Script([(500, {})]), fallback=STATIC)
    job_id = create(api_as(client_user), {"group": "llm", "method": "GET", "path": "/v1/models"})
    job = wait_status(job_id, {"succeeded", "failed"})
    assert job.status == "succeeded", job.error_message
    result = Job.objects.get(pk=job_id).result
    assert (result["status"], result["body"]) == (200, STATIC["json"])
    assert (result["fallback_used"], result["fallback"], result["provider"]) == (
        True,
        "static",
        None,
    )
    assert result["fallback_reason"] == "providers_failed"


def test_with_both_down_and_no_fallback_it_fails_with_the_documented_code(
    group_stack: Any, client_user: Any, api_as: Any
) -> None:
    first_script, second_script = Script([(503, {})]), Script([(500, {})])
    group_stack(first_script, second_script)
    job_id = create(api_as(client_user), {"group": "llm", "method": "GET", "path": "/v1/models"})
    job = wait_status(job_id, {"succeeded", "failed"})
    assert (job.status, job.error_code) == ("failed", "PROVIDER_GROUP_UNAVAILABLE")
    assert (first_script.requests, second_script.requests) == (1, 1)
    record = ErrorRecord.objects.get(support_id=job.error_support_id)
    assert (record.code, record.http_status, record.job_id) == (
        "PROVIDER_GROUP_UNAVAILABLE",
        503,
        job.id,
    )
    assert [entry["outcome"] for entry in record.context["tried"]] == ["failed", "failed"]


@pytest.mark.parametrize("target", ["group", "provider"])
def test_a_retried_post_job_sends_its_id_as_the_key_on_every_attempt(
    group_stack: Any, client_user: Any, api_as: Any, target: str
) -> None:
    # Two attempts per job attempt, two job attempts: the last request succeeds.
    script = Script([(503, {}), (503, {}), (503, {}), (200, {})])
    (name,) = group_stack(script, per_provider=[{"max_attempts": 2}])
    payload = {"method": "POST", "path": "/v1/chat", "json": {"q": "hi"}}
    payload[target] = "llm" if target == "group" else name
    job_id = create(api_as(client_user), payload, max_attempts=2)
    job = wait_status(job_id, {"succeeded", "failed"})
    assert (job.status, job.attempts) == ("succeeded", 2), job.error_message
    assert [seen.method for seen in script.seen] == ["POST"] * 4
    assert [seen.headers.get("idempotency-key") for seen in script.seen] == [job_id] * 4
    assert all(json.loads(seen.body) == {"q": "hi"} for seen in script.seen)
