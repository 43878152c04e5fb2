"""Django-level error pages (outside DRF) that still carry a support reference."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from controlplane.errors import exceptions as errors
from controlplane.errors.exceptions import to_user_facing
from controlplane.errors.recording import record_error

logger = logging.getLogger(__name__)


def _respond(request: HttpRequest, error: errors.UserFacingError) -> HttpResponse:
    try:
        record_error(error, request=request)
    except Exception:  # the error page itself must never fail; the log keeps the trace
        logger.exception("could not record error %s", error.support_id)
    if request.path.startswith("/api/") or "json" in request.headers.get("Accept", ""):
        response: HttpResponse = JsonResponse(error.envelope(), status=error.http_status)
    else:
        response = render(request, "errors/error.html", {"error": error}, status=error.http_status)
    for header, value in error.response_headers().items():
        response[header] = value
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _respond(request, to_user_facing(exception or errors.InvalidRequestError()))


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _respond(request, to_user_facing(exception or errors.ForbiddenError()))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _respond(request, errors.NotFoundError("This page does not exist.", original=exception))


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    return _respond(request, to_user_facing(exc) if exc else errors.InternalServerError())


def csrf_failure(request: HttpRequest, reason: str = "", **kwargs: Any) -> HttpResponse:
    return _respond(
        request,
        errors.ForbiddenError(
            "The form expired or was sent from another site; reload the page and try again.",
            code="CSRF_FAILED",
            technical_message=f"CSRF verification failed: {reason}",
        ),
    )
