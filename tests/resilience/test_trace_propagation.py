"""ServiceClient carries the trace and the request id upstream, and onto its error records."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from controlplane.errors.exceptions import UserFacingError
from controlplane.errors.models import ErrorRecord
from controlplane.lib import correlation, tracing
from controlplane.resilience.client import ServiceClient
from controlplane.resilience.retry import RetryPolicy
from tests.resilience.flaky_server import Script, flaky_server

pytestmark = pytest.mark.django_db(transaction=True)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
ONE_ATTEMPT = RetryPolicy(max_attempts=1, jitter="none")
TWO_ATTEMPTS = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01, jitter="none")


def _parent(seen: Any) -> tuple[str, str]:
    """(trace id, parent span id) of the traceparent the upstream received."""
    match = re.fullmatch(
        r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}", seen.headers["traceparent"]
    )
    assert match, seen.headers
    return match.group(1), match.group(2)


def test_the_upstream_receives_the_trace_and_the_request_id(fresh_name: str) -> None:
    script = Script([(200, {})])
    with (
        flaky_server(script) as url,
        tracing.continued(TRACEPARENT, "incoming request"),
        correlation.request_scope("req-42"),
    ):
        ServiceClient(fresh_name, url, retry=ONE_ATTEMPT).get("/ocr")
    (seen,) = script.seen
    trace_id, parent = _parent(seen)
    assert trace_id == TRACE_ID
    assert parent != "b7ad6b7169203331"  # the call's own span, a child of the request's
    assert seen.headers["x-request-id"] == "req-42"


def test_an_upstream_error_record_carries_the_same_ids(fresh_name: str) -> None:
    script = Script([(502, {})])
    with (
        flaky_server(script) as url,
        tracing.continued(TRACEPARENT, "incoming request"),
        correlation.request_scope("req-43"),
        pytest.raises(UserFacingError) as failed,
    ):
        ServiceClient(fresh_name, url, retry=TWO_ATTEMPTS).get("/ocr")
    record = ErrorRecord.objects.get(support_id=failed.value.support_id)
    assert len(script.seen) == 2
    # Every attempt names the same call span; the record names it too, so the upstream's
    # lines for this call are found from the record's span id as well as its trace id.
    parents = {_parent(seen) for seen in script.seen}
    assert parents == {(TRACE_ID, record.span_id)}
    assert {seen.headers["x-request-id"] for seen in script.seen} == {"req-43"}
    assert (record.trace_id, record.request_id) == (TRACE_ID, "req-43")


def test_outside_any_request_the_call_starts_its_own_trace(fresh_name: str) -> None:
    script = Script([(500, {})])
    with flaky_server(script) as url, pytest.raises(UserFacingError) as failed:
        ServiceClient(fresh_name, url, retry=ONE_ATTEMPT).get("/ocr")
    record = ErrorRecord.objects.get(support_id=failed.value.support_id)
    (seen,) = script.seen
    assert _parent(seen) == (record.trace_id, record.span_id)
    assert "x-request-id" not in seen.headers  # no request: no id to pass on
    assert record.request_id == ""


def test_a_callers_own_request_id_is_kept(fresh_name: str) -> None:
    script = Script([(200, {})])
    with flaky_server(script) as url, correlation.request_scope("req-44"):
        ServiceClient(fresh_name, url, retry=ONE_ATTEMPT).get(
            "/ocr", headers={"X-Request-Id": "theirs-1"}
        )
    assert script.seen[0].headers["x-request-id"] == "theirs-1"


def test_async_calls_carry_them_too(fresh_name: str) -> None:
    script = Script([(200, {})])

    async def call(url: str) -> None:
        client = ServiceClient(fresh_name, url, retry=ONE_ATTEMPT)
        await client.arequest("GET", "/ocr")

    with (
        flaky_server(script) as url,
        tracing.continued(TRACEPARENT, "incoming request"),
        correlation.request_scope("req-45"),
    ):
        asyncio.run(call(url))
    (seen,) = script.seen
    assert _parent(seen)[0] == TRACE_ID
    assert seen.headers["x-request-id"] == "req-45"


def test_a_call_span_keeps_the_path_but_not_the_query(fresh_name: str) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with flaky_server(Script([(200, {})])) as url, tracing.continued(TRACEPARENT, "in"):
            # A sampled caller: its spans record attributes, as when they are exported.
            ServiceClient(fresh_name, url, retry=ONE_ATTEMPT).get("/ocr?api_key=s3cr3t")
        (call,) = [span for span in exporter.get_finished_spans() if span.name.endswith("GET")]
    finally:
        exporter.shutdown()  # the processor stays on the provider; a shut exporter drops all
    assert call.attributes["url.path"] == "/ocr"
    assert "s3cr3t" not in repr(dict(call.attributes))
