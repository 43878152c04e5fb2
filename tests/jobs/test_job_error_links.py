"""An http.request job's error record names the job and the breaker (found by the
flapping drill: the ServiceClient recorded the error first, without the job, and the
runner's own record of the same support_id was then a no-op, so support could not see
which job had failed)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from controlplane.errors.models import ErrorRecord
from controlplane.errors.recording import job_context
from controlplane.resilience import providers
from jobs.actions import create_job
from jobs.tasks import run_job
from tests.breakers.conftest import fresh_name  # noqa: F401
from tests.resilience.flaky_server import Script, flaky_server


def test_an_http_request_jobs_support_id_names_the_job_and_the_breaker(
    clean_jobs: None,
    fresh_name: str,  # noqa: F811
    settings: Any,
) -> None:
    fast = {"max_attempts": 2, "jitter": "none", "initial_delay": 0.01}
    settings.RETRY_DEFAULTS = {**settings.RETRY_DEFAULTS, **fast}
    providers._clients.clear()
    script = Script([(503, {})])
    try:
        with flaky_server(script) as url:
            settings.PROVIDERS = {
                fresh_name: {
                    "base_url": url,
                    "mode": "real",
                    "timeout": 2,
                    "client_calls": ["GET /v1/parse"],
                }
            }
            job = create_job(
                kind="http.request",
                payload={"provider": fresh_name, "path": "/v1/parse"},
                max_attempts=1,
            )[0]
            assert run_job(str(job.id)) == "failed"
    finally:
        providers._clients.clear()
    assert script.requests == 2
    job.refresh_from_db()
    code = fresh_name.upper().replace("-", "_")
    assert job.error_code == f"{code}_SERVER_ERROR"
    record = ErrorRecord.objects.get(support_id=job.error_support_id)
    assert record.job_id == job.id
    assert (record.breaker_name, record.breaker_state) == (fresh_name, "closed")
    assert record.context["upstream"]["status"] == 503


def test_the_job_context_ends_with_the_block(db: Any) -> None:
    from controlplane.errors.exceptions import ServiceUnavailableError
    from controlplane.errors.recording import build_row

    with job_context("5f0c1d5e-8d7e-4f7e-9a53-0c6f3b0f2a11"):
        inside = build_row(ServiceUnavailableError())
        explicit = build_row(
            ServiceUnavailableError(), job_id="00000000-0000-0000-0000-000000000001"
        )
    outside = build_row(ServiceUnavailableError())
    assert inside["job_id"] == "5f0c1d5e-8d7e-4f7e-9a53-0c6f3b0f2a11"
    assert explicit["job_id"] == "00000000-0000-0000-0000-000000000001"
    assert outside["job_id"] is None


def test_recording_a_support_id_again_is_counted_and_logged_once(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A job re-records the error its ServiceClient recorded: one record, one log line,
    # one count (it was two of each, and the metric over-counted job failures).
    from controlplane.errors.exceptions import UserFacingError
    from controlplane.errors.recording import record_error

    error = UserFacingError(technical_message="upstream said no")
    with caplog.at_level(logging.INFO, logger="controlplane.errors.records"):
        record_error(error, service="partner")
        record_error(error, service="partner")
    lines = [
        r
        for r in caplog.records
        if r.name == "controlplane.errors.records"
        and r.event_fields["support_id"] == str(error.support_id)
    ]
    assert len(lines) == 1
    assert ErrorRecord.objects.filter(support_id=error.support_id).count() == 1
