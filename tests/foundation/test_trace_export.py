"""Spans go out over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT says where."""

from __future__ import annotations

import subprocess

from tests.conftest import PYTHON, REPO, subprocess_env
from tests.resilience.flaky_server import Script, flaky_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# A process that serves one request the way gunicorn's worker does (through the wsgi
# module, which starts the exporter), then flushes its spans and says whether it exports.
SERVE_ONE = f"""
import controlplane.wsgi
from django.test import Client
from opentelemetry import trace
from controlplane.lib import tracing
Client().get("/healthz", HTTP_TRACEPARENT="00-{TRACE_ID}-00f067aa0ba902b7-01")
trace.get_tracer_provider().force_flush()
print(tracing.start_export())
"""


def _serve_one(**env: str) -> str:
    result = subprocess.run(
        [PYTHON, "-c", SERVE_ONE],
        cwd=REPO,
        env=subprocess_env(DJANGO_SETTINGS_MODULE="controlplane.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def test_it_exports_the_request_span_to_the_configured_collector() -> None:
    script = Script([(200, {})])
    with flaky_server(script) as url:
        assert _serve_one(OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_SERVICE_NAME="cp-test") == "True"
    (seen,) = script.seen
    assert (seen.method, seen.path) == ("POST", "/v1/traces")
    assert seen.headers["content-type"] == "application/x-protobuf"
    assert bytes.fromhex(TRACE_ID) in seen.body and b"cp-test" in seen.body


def test_without_an_endpoint_nothing_is_exported() -> None:
    assert _serve_one(OTEL_EXPORTER_OTLP_ENDPOINT="") == "False"
