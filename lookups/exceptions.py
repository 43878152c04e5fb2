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
    """The registry cannot be read. Lookups answer it with 200 (stale, or the slug-only
    fallback) and this code in ``reason`` (``lookups.resolver.DATABASE_UNAVAILABLE``)."""

    code = "LOOKUP_DATABASE_UNAVAILABLE"
    recovery = "fallback"
