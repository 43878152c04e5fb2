"""User-facing errors: what a caller sees, and what support can look up.

Every instance gets a fresh ``support_id`` at construction; the user-facing
message always ends with ``(Reference: <support_id>)`` so a customer can read
it back to support, who paste it into the admin. :func:`to_user_facing` maps
any other exception (DRF's, Django's, the database's) to one of these.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.core import exceptions as django_exceptions
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf


def reference_text(user_message: str, support_id: uuid.UUID | str) -> str:
    """What a user reads: the message and the reference support looks up."""
    return f"{user_message} (Reference: {support_id})"


class UserFacingError(Exception):
    code = "INTERNAL_ERROR"
    error_type = "internal_error"
    http_status = 500
    retryable = False
    default_message = "Something went wrong on our side."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        code: str | None = None,
        technical_message: str | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        original: BaseException | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
        support_id: uuid.UUID | None = None,
    ) -> None:
        self.user_message = user_message or self.default_message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        if retryable is not None:
            self.retryable = retryable
        self.technical_message = technical_message or (
            f"{type(original).__name__}: {original}" if original else self.user_message
        )
        self.context = dict(context or {})
        self.metadata = dict(metadata or {})
        self.original = original
        self.support_id = support_id or uuid.uuid4()
        super().__init__(self.technical_message)

    @property
    def message(self) -> str:
        """The user-safe text, with the reference support can look up."""
        return reference_text(self.user_message, self.support_id)

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "type": self.error_type,
                "message": self.message,
                "metadata": self.metadata,
                "support_id": str(self.support_id),
            }
        }

    def response_headers(self) -> dict[str, str]:
        return {}


def known_codes() -> set[str]:
    """The codes of every UserFacingError class defined so far (apps define theirs on import)."""
    codes, classes = set(), [UserFacingError]
    while classes:
        cls = classes.pop()
        codes.add(cls.code)
        classes.extend(cls.__subclasses__())
    return codes


class InvalidRequestError(UserFacingError):
    """Malformed input (bad JSON, wrong field types): 400."""

    code = "INVALID_REQUEST"
    error_type = "invalid_request"
    http_status = 400
    default_message = "The request is invalid."


class ValidationError(UserFacingError):
    """Well-formed input that cannot be processed: 422."""

    code = "VALIDATION_ERROR"
    error_type = "validation_error"
    http_status = 422
    default_message = "The request could not be processed."


class UnauthorizedError(UserFacingError):
    code = "UNAUTHORIZED"
    error_type = "authentication_error"
    http_status = 401
    default_message = "Authentication is required."

    def __init__(self, *args: Any, www_authenticate: str = "Token", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.www_authenticate = www_authenticate

    def response_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.www_authenticate} if self.www_authenticate else {}


class ForbiddenError(UserFacingError):
    code = "FORBIDDEN"
    error_type = "permission_error"
    http_status = 403
    default_message = "You do not have permission to do this."


class NotFoundError(UserFacingError):
    code = "NOT_FOUND"
    error_type = "not_found"
    http_status = 404
    default_message = "Not found."


class MethodNotAllowedError(UserFacingError):
    code = "METHOD_NOT_ALLOWED"
    error_type = "invalid_request"
    http_status = 405
    default_message = "This method is not allowed here."


class ConflictError(UserFacingError):
    code = "CONFLICT"
    error_type = "conflict"
    http_status = 409
    default_message = "The request conflicts with the current state."


class PayloadTooLargeError(UserFacingError):
    code = "PAYLOAD_TOO_LARGE"
    error_type = "invalid_request"
    http_status = 413
    default_message = "The request body is too large."


class RetryableError(UserFacingError):
    """Errors a client may retry; ``retry_after`` (seconds) becomes a Retry-After header."""

    retryable = True

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.metadata.setdefault("retry_after", retry_after)

    def response_headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(0, round(self.retry_after)))}


class RateLimitError(RetryableError):
    code = "RATE_LIMITED"
    error_type = "rate_limit_error"
    http_status = 429
    default_message = "Too many requests; please retry later."


class ServiceUnavailableError(RetryableError):
    code = "SERVICE_UNAVAILABLE"
    error_type = "service_unavailable"
    http_status = 503
    default_message = "The service is temporarily unavailable; please retry later."


class InternalServerError(UserFacingError):
    pass


# Upstream-call failures: code "<SERVICE>_<KIND>_ERROR".
# kind -> (HTTP status we answer with, retryable, user message)
UPSTREAM_KINDS: dict[str, tuple[int, bool, str]] = {
    "AUTH": (500, False, "A service we depend on rejected our credentials."),
    "PERMISSION": (500, False, "A service we depend on refused this operation."),
    "RATE_LIMIT": (429, True, "A service we depend on is rate limiting us; please retry later."),
    "SERVER": (503, True, "A service we depend on is failing; please retry later."),
    "TIMEOUT": (503, True, "A service we depend on did not answer in time; please retry later."),
    "NETWORK": (503, True, "A service we depend on could not be reached; please retry later."),
    "UNEXPECTED": (500, False, "A service we depend on answered unexpectedly."),
}


def service_code_prefix(service: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", service.upper()).strip("_") or "UPSTREAM"


class UpstreamError(RetryableError):
    """A failed outgoing call, e.g. ``LLAMAPARSE_TIMEOUT_ERROR``; retryable by kind."""

    error_type = "upstream_error"

    def __init__(
        self,
        service: str,
        kind: str,
        *,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        **kwargs: Any,
    ) -> None:
        if kind not in UPSTREAM_KINDS:
            raise ValueError(f"unknown upstream error kind {kind!r}")
        status, retryable, message = UPSTREAM_KINDS[kind]
        kwargs.setdefault("http_status", status)
        kwargs.setdefault("retryable", retryable)
        kwargs.setdefault("user_message", message)
        code = f"{service_code_prefix(service)}_{kind}_ERROR"
        super().__init__(code=code, retry_after=retry_after, **kwargs)
        self.service = service
        self.kind = kind
        self.upstream_status = upstream_status
        self.metadata.setdefault("service", service)

    def response_headers(self) -> dict[str, str]:
        return super().response_headers() if self.http_status in (429, 503) else {}


def to_user_facing(exc: BaseException) -> UserFacingError:
    """Map any exception to the user-facing error we answer with."""
    if isinstance(exc, UserFacingError):
        return exc
    if isinstance(exc, drf.APIException):
        return _from_drf(exc)
    if isinstance(exc, Http404):
        return NotFoundError(original=exc)
    if isinstance(exc, django_exceptions.PermissionDenied):
        return ForbiddenError(original=exc)
    if isinstance(exc, django_exceptions.RequestDataTooBig):
        return PayloadTooLargeError(original=exc)
    if isinstance(exc, django_exceptions.SuspiciousOperation | django_exceptions.BadRequest):
        return InvalidRequestError(original=exc)
    if isinstance(exc, OperationalError | InterfaceError):
        return ServiceUnavailableError(
            "The service is temporarily unavailable; please retry shortly.",
            code="DATABASE_UNAVAILABLE",
            retry_after=5,
            original=exc,
        )
    if isinstance(exc, DatabaseError):
        return InternalServerError(code="DATABASE_ERROR", original=exc)
    return InternalServerError("An unexpected error occurred.", code="INTERNAL_ERROR", original=exc)


def _from_drf(exc: drf.APIException) -> UserFacingError:
    detail = exc.detail if isinstance(exc.detail, str) else None
    common: dict[str, Any] = {"original": exc, "technical_message": f"{type(exc).__name__}: {exc}"}
    if isinstance(exc, drf.ValidationError):
        return InvalidRequestError(
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
            return ForbiddenError(detail, code=code, **common)
        header = getattr(exc, "auth_header", None) or ""
        return UnauthorizedError(detail, code=code, www_authenticate=header, **common)
    if isinstance(exc, drf.Throttled):
        return RateLimitError(retry_after=exc.wait, **common)
    simple: dict[type[drf.APIException], tuple[type[UserFacingError], str]] = {
        drf.PermissionDenied: (ForbiddenError, "PERMISSION_DENIED"),
        drf.NotFound: (NotFoundError, "NOT_FOUND"),
        drf.MethodNotAllowed: (MethodNotAllowedError, "METHOD_NOT_ALLOWED"),
        drf.ParseError: (InvalidRequestError, "PARSE_ERROR"),
        drf.UnsupportedMediaType: (InvalidRequestError, "UNSUPPORTED_MEDIA_TYPE"),
        drf.NotAcceptable: (InvalidRequestError, "NOT_ACCEPTABLE"),
    }
    for drf_class, (cls, code) in simple.items():
        if isinstance(exc, drf_class):
            return cls(detail, code=code, http_status=exc.status_code, **common)
    return UserFacingError(
        detail, code=str(exc.default_code).upper(), http_status=exc.status_code, **common
    )


def _plain(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)
