"""One log format for every process: JSON lines in production, readable text in development."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Callable, Iterator

import pytest

from controlplane.errors.scrubbing import default_scrubber
from controlplane.lib import correlation, tracing
from controlplane.lib.logs import log_event, logging_config
from tests.breakers.conftest import fresh_name  # noqa: F401
from tests.foundation.test_settings import PRODUCTION, run_django

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def configured() -> Iterator[Callable[..., io.StringIO]]:
    """Applies logging_config(level, fmt) with its handler writing to a buffer; restores
    the project's logging afterwards."""
    from django.conf import settings

    def configure(level: str, fmt: str) -> io.StringIO:
        clear_logger_filters()
        config = logging_config(level, fmt, scrubber=default_scrubber)
        config["handlers"]["console"]["stream"] = buffer = io.StringIO()
        logging.config.dictConfig(config)
        return buffer

    yield configure
    clear_logger_filters()
    logging.config.dictConfig(settings.LOGGING)


def clear_logger_filters() -> None:
    """dictConfig adds a logger's filters to those it has (it replaces only handlers)."""
    logging.getLogger("django-q").filters.clear()


def test_a_json_line_carries_the_ids_and_the_fields(configured: Callable[..., io.StringIO]) -> None:
    buffer = configured("INFO", "json")
    with (
        tracing.continued(TRACEPARENT, "request"),
        correlation.request_scope("req-1"),
        correlation.job_scope("job-1"),
    ):
        trace_id, span_id = correlation.trace_ids()
        log_event(logging.getLogger("controlplane.test"), "breaker_opened", breaker="ocr", n=3)
    (line,) = buffer.getvalue().splitlines()
    event = json.loads(line)
    assert event["message"] == event["event"] == "breaker_opened"
    assert (event["breaker"], event["n"], event["level"]) == ("ocr", 3, "INFO")
    assert (event["request_id"], event["job_id"]) == ("req-1", "job-1")
    assert (event["trace_id"], event["span_id"]) == (trace_id, span_id)
    assert event["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_secrets_are_scrubbed_from_message_fields_and_traceback(
    configured: Callable[..., io.StringIO],
) -> None:
    buffer = configured("INFO", "json")
    logger = logging.getLogger("controlplane.test")
    try:
        raise ValueError("connect failed: password=hunter2")
    except ValueError:
        logger.exception("login with token=abc123secret failed", extra={})
    log_event(logger, "called", api_key="k-123456", url="https://u:pw1234@h/x")
    text = buffer.getvalue()
    for secret in ("hunter2", "abc123secret", "k-123456", "pw1234"):
        assert secret not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert "ValueError" in first["exception"]
    assert second["api_key"] == "[Filtered]"


def test_text_lines_are_readable_with_the_fields_after_the_message(
    configured: Callable[..., io.StringIO],
) -> None:
    buffer = configured("INFO", "text")
    with correlation.request_scope("req-2"):
        log_event(logging.getLogger("controlplane.test"), "error_recorded", code="X", breaker="")
    (line,) = buffer.getvalue().splitlines()
    assert line.endswith("INFO controlplane.test error_recorded [code=X request_id=req-2]")


@pytest.mark.parametrize(
    "message",
    [
        "Process-1 processing job 5f0c 'jobs.tasks.run_job'",
        "Processed 'jobs.tasks.run_job' (5f0c)",
        "Process-2 created task maintenance from schedule [jobs: maintenance]",
        "Enqueued [controlplane] 17",
    ],
)
def test_django_q_chatter_is_debug(configured: Callable[..., io.StringIO], message: str) -> None:
    django_q = logging.getLogger("django-q")
    quiet = configured("INFO", "json")
    django_q.info(message)
    django_q.info("Q Cluster controlplane starting.")  # not chatter: kept at INFO
    assert [json.loads(line)["message"] for line in quiet.getvalue().splitlines()] == [
        "Q Cluster controlplane starting."
    ]
    verbose = configured("DEBUG", "json")
    django_q.info(message)
    assert [json.loads(line)["level"] for line in verbose.getvalue().splitlines()] == ["DEBUG"]


@pytest.mark.parametrize(("env", "expected"), [({}, "text"), (PRODUCTION, "json")])
def test_production_logs_json_and_development_text(env: dict[str, str], expected: str) -> None:
    result = run_django(
        "from django.conf import settings; print(settings.LOG_FORMAT)",
        **{"ENVIRONMENT": "development", **env},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expected]


def test_a_breaker_transition_names_its_breaker(
    configured: Callable[..., io.StringIO],
    fresh_name: str,  # noqa: F811
) -> None:
    from controlplane.breakers.circuit import breaker

    buffer = configured("INFO", "json")
    opened = breaker(fresh_name, failure_threshold=1, cooldown_seconds=60)
    with pytest.raises(RuntimeError):
        opened.call(_fail)
    events = [json.loads(line) for line in buffer.getvalue().splitlines()]
    (transition,) = [event for event in events if event.get("event") == "breaker_transition"]
    assert (transition["breaker"], transition["from_state"], transition["to_state"]) == (
        fresh_name,
        "closed",
        "open",
    )


def _fail() -> None:
    raise RuntimeError("upstream down")


def test_djangos_own_lines_go_only_through_the_one_log() -> None:
    # Django's default LOGGING prints each django.* line bare to the console (DEBUG on)
    # and mails ADMINS; with them, a 404 in `make run` showed twice.
    assert logging.getLogger("django").handlers == []
    assert logging.getLogger("django").propagate
