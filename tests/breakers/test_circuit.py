"""The breaker API for code: decorator and context managers, sync and async, and what counts
as a failure."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.models import Breaker


def test_client_errors_do_not_count(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=1)
    request = httpx.Request("GET", "http://upstream/x")

    def not_found() -> None:
        raise httpx.HTTPStatusError(
            "404", request=request, response=httpx.Response(404, request=request)
        )

    with pytest.raises(httpx.HTTPStatusError):
        b.call(not_found)
    assert Breaker.objects.get(name=b.name).state == "closed"


def test_decorator_and_context_managers_sync_and_async(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=2)

    @b
    def sync_fn(x: int) -> int:
        return x * 2

    @b
    async def async_fn(x: int) -> int:
        return x * 3

    assert sync_fn(2) == 4
    assert asyncio.run(async_fn(2)) == 6
    with b:
        pass
    with pytest.raises(RuntimeError), b:
        raise RuntimeError("one")

    async def twice() -> None:
        async with b:
            raise RuntimeError("two")

    with pytest.raises(RuntimeError):
        asyncio.run(twice())
    assert Breaker.objects.get(name=b.name).state == "open"
    with pytest.raises(CircuitOpenError):
        sync_fn(1)
