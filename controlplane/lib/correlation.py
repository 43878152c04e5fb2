"""The ids that tie one request (or job) together: request id, trace and span, job.

Every error record, log line and outgoing call reads them from here, so support can
follow a support UUID to the request that caused it and on into an upstream's logs.

- ``X-Request-Id``: an incoming one is kept when it is sane (at most
  ``MAX_REQUEST_ID_LENGTH`` characters of a header- and log-safe set); anything else is
  replaced by a fresh UUID. Every response carries it, error envelopes included, since
  :class:`RequestIdMiddleware` sits outside every middleware that can answer.
- Trace and span: the current OpenTelemetry span (``controlplane.lib.tracing``).
- Job: the job whose handler runs in this context (set by the jobs runner).
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from opentelemetry import trace

REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID_LENGTH = 128
# Letters, digits and . _ : - (UUIDs, ULIDs, proxies' hex ids): safe in a header, a log
# line and a URL, with nothing a log reader could take for a field separator.
_SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_REQUEST_ID_LENGTH - 1}}}")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_job_id: contextvars.ContextVar[str] = contextvars.ContextVar("job_id", default="")


@dataclass(frozen=True)
class Ids:
    """The correlation ids of the current context ("" where there is none)."""

    request_id: str
    trace_id: str
    span_id: str
    job_id: str


def sane_request_id(value: str | None) -> str | None:
    """``value`` if it may be used as a request id as it is, else None."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    return str(uuid.uuid4())


def request_id() -> str:
    return _request_id.get()


def job_id() -> str:
    return _job_id.get()


def trace_ids() -> tuple[str, str]:
    """(trace_id, span_id) of the current span as 32 and 16 hex digits, or ("", "")."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


def current() -> Ids:
    trace_id, span_id = trace_ids()
    return Ids(
        request_id=_request_id.get(), trace_id=trace_id, span_id=span_id, job_id=_job_id.get()
    )


@contextmanager
def request_scope(value: str) -> Iterator[str]:
    """Inside, ``value`` is the request id (a job runs under the id of the request that
    created it)."""
    token = _request_id.set(value)
    try:
        yield value
    finally:
        _request_id.reset(token)


@contextmanager
def job_scope(value: str) -> Iterator[None]:
    """Inside (same thread or task), ``value`` is the job being run."""
    token = _job_id.set(value)
    try:
        yield
    finally:
        _job_id.reset(token)


class RequestIdMiddleware:
    """The outermost middleware: the id is set before anything can fail, and every answer
    leaves with it, error envelopes included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        value = sane_request_id(request.META.get("HTTP_X_REQUEST_ID")) or new_request_id()
        with request_scope(value):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = value
        return response
