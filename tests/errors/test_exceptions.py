from __future__ import annotations

import uuid

import pytest

from controlplane.errors import exceptions as errors


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.NotFoundError, 404),
        (errors.ValidationError, 422),
        (errors.UnauthorizedError, 401),
        (errors.ForbiddenError, 403),
        (errors.ConflictError, 409),
        (errors.PayloadTooLargeError, 413),
        (errors.RateLimitError, 429),
        (errors.ServiceUnavailableError, 503),
        (errors.InternalServerError, 500),
    ],
)
def test_each_error_has_its_status_and_a_fresh_support_id(cls: type, status: int) -> None:
    first, second = cls("Nope."), cls("Nope.")
    assert first.http_status == status
    assert isinstance(first.support_id, uuid.UUID)
    assert first.support_id != second.support_id
    assert first.message == f"Nope. (Reference: {first.support_id})"
    assert first.envelope()["error"]["support_id"] == str(first.support_id)


def test_rate_limit_carries_retry_after() -> None:
    error = errors.RateLimitError(retry_after=12.4)
    assert error.retryable
    assert error.response_headers() == {"Retry-After": "12"}
    assert error.envelope()["error"]["metadata"]["retry_after"] == 12.4


@pytest.mark.parametrize(
    ("kind", "status", "retryable"),
    [
        ("AUTH", 500, False),
        ("PERMISSION", 500, False),
        ("RATE_LIMIT", 429, True),
        ("SERVER", 503, True),
        ("TIMEOUT", 503, True),
        ("NETWORK", 503, True),
        ("UNEXPECTED", 500, False),
    ],
)
def test_upstream_codes(kind: str, status: int, retryable: bool) -> None:
    error = errors.UpstreamError("llama-parse", kind)
    assert error.code == f"LLAMA_PARSE_{kind}_ERROR"
    assert (error.http_status, error.retryable) == (status, retryable)
    assert error.message.endswith(f"(Reference: {error.support_id})")


def test_unknown_upstream_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown upstream error kind"):
        errors.UpstreamError("x", "WEIRD")
