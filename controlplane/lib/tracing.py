"""OpenTelemetry for every process: a span per request and job, W3C ``traceparent`` in and out.

Set up in two steps, because of forking (gunicorn and django-q2 fork their workers):

- :func:`setup` (app start-up, every process): a span per request, the incoming
  ``traceparent`` honoured, and the SDK's tracer provider, so trace and span ids are
  generated and stored on error records even when nothing exports them. When spans are
  exported, the official Django instrumentation makes them (route, status, HTTP
  attributes: worth their ~0.1-0.2 ms per request to whoever reads them); when nothing
  exports, :class:`RequestSpanMiddleware` makes the same ids without the attributes nobody
  would see (``bench/lookups.py`` section e measures both). The provider alone holds no
  thread and no socket, so it forks safely.
- :func:`start_export` (after the fork: gunicorn's ``post_fork``, the wsgi module, a
  django-q2 worker before its first job): only when the standard
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, a batch processor and OTLP/HTTP exporter, whose
  thread and connection belong to the process that exports. Once per process; a child
  forked after it keeps the parent's processor, which the SDK restarts in the child.

Everything else is the standard ``OTEL_*`` environment: ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_TRACES_SAMPLER``,
``OTEL_SDK_DISABLED``, ``OTEL_PYTHON_DJANGO_INSTRUMENT=False`` (no request spans).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from controlplane.lib import correlation

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "controlplane"
_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
_state: dict[str, Any] = {"set_up": False, "exporting": False}
tracer = trace.get_tracer("controlplane")


def setup(*, after_middleware: str = "") -> None:
    """Instrument Django and install the tracer provider; once per process.

    The request span's middleware goes right after ``after_middleware`` (first if not
    listed): it reads the Host header before anything else, and a refused Host raises
    there, so the middleware that must see every answer (the request id, the error
    envelope) stays outside it."""
    with _lock:
        if _state["set_up"]:
            return
        _state["set_up"] = True
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        # Attributes given here would win over OTEL_SERVICE_NAME: the default only without it.
        named = os.environ.get("OTEL_SERVICE_NAME")
        resource = Resource.create({} if named else {SERVICE_NAME: DEFAULT_SERVICE_NAME})
        # Nothing exports: a span nobody will see is not sampled, so it records nothing
        # (its ids are still made); a caller's own sampling decision is passed on.
        quiet = not export_endpoint() and "OTEL_TRACES_SAMPLER" not in os.environ
        sampler = ParentBased(ALWAYS_OFF) if quiet else None
        trace.set_tracer_provider(TracerProvider(resource=resource, sampler=sampler))
    from django.conf import settings

    listed = list(settings.MIDDLEWARE)
    position = listed.index(after_middleware) + 1 if after_middleware in listed else 0
    if not export_endpoint():
        if os.environ.get("OTEL_PYTHON_DJANGO_INSTRUMENT", "").lower() != "false":
            settings.MIDDLEWARE = [*listed[:position], REQUEST_SPAN_MIDDLEWARE, *listed[position:]]
        return
    instrumentor = DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(middleware_position=position, request_hook=_name_request)


def export_endpoint() -> str:
    """Where spans go (the standard OTLP variables), or "" when nothing exports them."""
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ""
    )


REQUEST_SPAN_MIDDLEWARE = "controlplane.lib.tracing.RequestSpanMiddleware"


class RequestSpanMiddleware:
    """A server span per request, in the caller's trace when it sent a valid
    ``traceparent``: the ids error records, logs and upstream calls carry. Used when
    nothing exports spans, so it sets no attributes."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        sent = request.META.get("HTTP_TRACEPARENT")
        parent = _propagator.extract({"traceparent": sent}) if sent else None
        with tracer.start_as_current_span(
            request.method or "HTTP", context=parent, kind=SpanKind.SERVER
        ):
            return self.get_response(request)


def _name_request(span: trace.Span, request: Any) -> None:
    """The request span carries the request id: a trace viewer finds it by either."""
    if span.is_recording() and (request_id := correlation.request_id()):
        span.set_attribute("http.request.header.x-request-id", request_id)


def start_export() -> bool:
    """Export spans over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its traces
    variant) is set; call after forking. True when this process exports."""
    from opentelemetry.sdk.trace import TracerProvider

    endpoint = export_endpoint()
    with _lock:
        if _state["exporting"]:
            return True
        provider = trace.get_tracer_provider()
        if not endpoint or not isinstance(provider, TracerProvider):
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _state["exporting"] = True
    logger.info("exporting traces over OTLP to %s", endpoint)
    return True


def traceparent() -> str:
    """The current span as a W3C ``traceparent`` value, or "" when there is none."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


def carried_traceparent(name: str) -> str:
    """The ``traceparent`` work handed to another process carries: the current span's,
    or, outside any (a command, the shell), that of a new span named ``name``, so every
    run of that work shares one trace."""
    if trace.get_current_span().get_span_context().is_valid:
        return traceparent()
    with tracer.start_as_current_span(name, kind=SpanKind.PRODUCER):
        return traceparent()


def inject(headers: Any) -> None:
    """Put the current span's ``traceparent`` into ``headers`` (any mutable mapping)."""
    _propagator.inject(headers)


@contextmanager
def continued(parent: str, name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span named ``name`` in the trace of the ``parent`` traceparent (a job resumes the
    trace of the request that created it); a new trace when ``parent`` is empty or bad."""
    carrier = {"traceparent": parent} if parent else {}
    token = otel_context.attach(_propagator.extract(carrier))
    try:
        with tracer.start_as_current_span(
            name, kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            yield span
    finally:
        otel_context.detach(token)


@contextmanager
def client_span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A child span for one outgoing call (its id is the parent the upstream sees)."""
    with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
        yield span
