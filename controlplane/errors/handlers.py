"""Every API error leaves in one envelope, with a recorded support_id.

``{"error": {"code", "type", "message", "metadata", "support_id"}}``
"""

from __future__ import annotations

from typing import Any

from django.core import exceptions as django_exceptions
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from controlplane.errors import exceptions as errors
from controlplane.errors.recording import record_error


def to_user_facing(exc: BaseException) -> errors.UserFacingError:
    """Map any exception to the user-facing error we answer with."""
    if isinstance(exc, errors.UserFacingError):
        return exc
    if isinstance(exc, drf.APIException):
        return _from_drf(exc)
    if isinstance(exc, Http404):
        return errors.NotFoundError(original=exc)
    if isinstance(exc, django_exceptions.PermissionDenied):
        return errors.ForbiddenError(original=exc)
    if isinstance(exc, django_exceptions.RequestDataTooBig):
        return errors.PayloadTooLargeError(original=exc)
    if isinstance(exc, django_exceptions.SuspiciousOperation | django_exceptions.BadRequest):
        return errors.InvalidRequestError(original=exc)
    if isinstance(exc, OperationalError | InterfaceError):
        return errors.ServiceUnavailableError(
            "The service is temporarily unavailable; please retry shortly.",
            code="DATABASE_UNAVAILABLE",
            retry_after=5,
            original=exc,
        )
    if isinstance(exc, DatabaseError):
        return errors.InternalServerError(code="DATABASE_ERROR", original=exc)
    return errors.InternalServerError(
        "An unexpected error occurred.", code="INTERNAL_ERROR", original=exc
    )


def _from_drf(exc: drf.APIException) -> errors.UserFacingError:
    detail = exc.detail if isinstance(exc.detail, str) else None
    common: dict[str, Any] = {"original": exc, "technical_message": f"{type(exc).__name__}: {exc}"}
    if isinstance(exc, drf.ValidationError):
        return errors.InvalidRequestError(
            "The request is invalid; see metadata.fields.",
            metadata={"fields": _plain(exc.detail)},
            **common,
        )
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        code = (
            "NOT_AUTHENTICATED"
            if isinstance(exc, drf.NotAuthenticated)
            else ("AUTHENTICATION_FAILED")
        )
        if exc.status_code == 403:  # DRF's choice when no authenticator offers a challenge
            return errors.ForbiddenError(detail, code=code, **common)
        header = getattr(exc, "auth_header", None) or ""
        return errors.UnauthorizedError(detail, code=code, www_authenticate=header, **common)
    if isinstance(exc, drf.Throttled):
        return errors.RateLimitError(retry_after=exc.wait, **common)
    simple: dict[type[drf.APIException], tuple[type[errors.UserFacingError], str]] = {
        drf.PermissionDenied: (errors.ForbiddenError, "PERMISSION_DENIED"),
        drf.NotFound: (errors.NotFoundError, "NOT_FOUND"),
        drf.MethodNotAllowed: (errors.MethodNotAllowedError, "METHOD_NOT_ALLOWED"),
        drf.ParseError: (errors.InvalidRequestError, "PARSE_ERROR"),
        drf.UnsupportedMediaType: (errors.InvalidRequestError, "UNSUPPORTED_MEDIA_TYPE"),
        drf.NotAcceptable: (errors.InvalidRequestError, "NOT_ACCEPTABLE"),
    }
    for drf_class, (cls, code) in simple.items():
        if isinstance(exc, drf_class):
            return cls(detail, code=code, http_status=exc.status_code, **common)
    return errors.UserFacingError(
        detail, code=str(exc.default_code).upper(), http_status=exc.status_code, **common
    )


def _plain(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)


def error_response(error: errors.UserFacingError) -> Response:
    return Response(error.envelope(), status=error.http_status, headers=error.response_headers())


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    error = to_user_facing(exc)
    record_error(error, request=context.get("request"))
    set_rollback()
    return error_response(error)
