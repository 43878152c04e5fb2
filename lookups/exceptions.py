"""How a lookup fails, and what the caller may do about it (``recovery``)."""

from __future__ import annotations

from controlplane.errors.exceptions import (
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
)


class InvalidSlugError(InvalidRequestError):
    code = "INVALID_SLUG"
    recovery = "abort"


class MicroServiceNotFoundError(NotFoundError):
    code = "MICRO_SERVICE_NOT_FOUND"
    recovery = "fallback"


class DatabaseConnectionError(ServiceUnavailableError):
    code = "LOOKUP_DATABASE_UNAVAILABLE"
    recovery = "fallback"
