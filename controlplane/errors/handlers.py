"""DRF exception handler: every API error leaves in one envelope.

``{"error": {"code", "type", "message", "metadata", "support_id"}}``
"""

from __future__ import annotations

import uuid
from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response

_DRF_CODES: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.NotAuthenticated: ("NOT_AUTHENTICATED", "authentication_error"),
    exceptions.AuthenticationFailed: ("AUTHENTICATION_FAILED", "authentication_error"),
    exceptions.PermissionDenied: ("PERMISSION_DENIED", "permission_error"),
    exceptions.NotFound: ("NOT_FOUND", "not_found"),
    exceptions.MethodNotAllowed: ("METHOD_NOT_ALLOWED", "invalid_request"),
    exceptions.NotAcceptable: ("NOT_ACCEPTABLE", "invalid_request"),
    exceptions.UnsupportedMediaType: ("UNSUPPORTED_MEDIA_TYPE", "invalid_request"),
    exceptions.ParseError: ("PARSE_ERROR", "invalid_request"),
    exceptions.ValidationError: ("VALIDATION_ERROR", "validation_error"),
    exceptions.Throttled: ("RATE_LIMITED", "rate_limit_error"),
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    code, error_type = "INTERNAL_ERROR", "internal_error"
    http_status = status.HTTP_500_INTERNAL_SERVER_ERROR
    message = "An unexpected error occurred."
    metadata: dict[str, Any] = {}
    if isinstance(exc, exceptions.APIException):
        http_status = exc.status_code
        for cls, (mapped_code, mapped_type) in _DRF_CODES.items():
            if isinstance(exc, cls):
                code, error_type = mapped_code, mapped_type
                break
        if isinstance(exc, exceptions.ValidationError):
            message = "The request is invalid."
            metadata["fields"] = exc.detail
        else:
            message = str(exc.detail)
    support_id = uuid.uuid4()
    body = {
        "error": {
            "code": code,
            "type": error_type,
            "message": f"{message} (Reference: {support_id})",
            "metadata": metadata,
            "support_id": str(support_id),
        }
    }
    response = Response(body, status=http_status)
    if isinstance(exc, exceptions.APIException):
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
    return response
