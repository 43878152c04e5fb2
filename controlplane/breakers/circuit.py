"""The breaker API for code in this project.

    from controlplane.breakers.circuit import breaker

    @breaker("llamaparse")              # decorator, sync or async
    def parse(doc): ...

    with breaker("llamaparse"):         # context manager (also ``async with``)
        ...

    breaker("llamaparse").call(fn, *args)

An open breaker raises ``CircuitOpenError`` (a ServiceUnavailableError, code
``<NAME>_CIRCUIT_OPEN``, with ``retry_after``). Which exceptions count as
failures is decided by ``is_failure``: by default client errors (4xx other
than 429, non-retryable UserFacingErrors below 500) do not.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import re
from collections.abc import Callable
from time import monotonic
from typing import Any, TypeVar

import httpx
from django.conf import settings

from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.registry import registry
from controlplane.breakers.snapshot import Permit
from controlplane.errors.exceptions import UserFacingError

T = TypeVar("T")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_open_permits: contextvars.ContextVar[tuple[tuple[int, Permit], ...]] = contextvars.ContextVar(
    "breaker_permits", default=()
)


_reserved: set[str] = set()


def reserve(name: str) -> None:
    """Mark ``name`` as a breaker this service runs itself: remote services may neither
    report outcomes on it nor take its permits. Every CircuitBreaker reserves its name; a
    breaker created lazily (as the lookups' is) is reserved from its AppConfig.ready()."""
    _reserved.add(name)


def is_reserved(name: str) -> bool:
    """Reserved names, and the breakers of configured providers and provider groups."""
    return name in _reserved or name in settings.PROVIDERS or name in settings.PROVIDER_GROUPS


def default_is_failure(exc: BaseException) -> bool:
    """Does this exception say the service is unhealthy (as opposed to our request was bad)?"""
    if isinstance(exc, CircuitOpenError):
        return False
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status >= 500 or status == 429
    if isinstance(exc, UserFacingError):
        return exc.http_status >= 500 or exc.http_status == 429
    return isinstance(exc, Exception)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        is_failure: Callable[[BaseException], bool] = default_is_failure,
        ignore: tuple[type[BaseException], ...] = (),
        **config: Any,
    ) -> None:
        if not NAME.fullmatch(name):
            raise ValueError(
                f"breaker name {name!r}: use 1-100 lowercase letters, digits, '.', '_' or '-'"
            )
        self.name = name
        # Code that calls an upstream through this breaker owns the name: no client may
        # report on it or probe it, even before its row exists.
        reserve(name)
        self.runtime = registry.get(name, config)
        self._is_failure = is_failure
        self._ignore = ignore

    def counts(self, exc: BaseException) -> bool:
        return not isinstance(exc, self._ignore) and self._is_failure(exc)

    def allows(self) -> bool:
        return self.runtime.allows()

    def refusal(self) -> CircuitOpenError | None:
        """None if a call now would be permitted, else the CircuitOpenError it would meet."""
        return self.runtime.refusal()

    @property
    def state(self) -> str:
        snap = self.runtime.current()
        return "unknown" if snap is None else snap.effective_state

    # --- call ----------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        runtime = self.runtime
        snap = runtime.snapshot
        if snap is not None and snap.fast and monotonic() < snap.fresh_until:
            # Hot path: a closed breaker costs no database round trip.
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                if self.counts(exc):
                    runtime.failure(Permit(snap.generation))
                raise
            if snap.track_successes:
                runtime.success(Permit(snap.generation))
            return result
        permit = runtime.acquire()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if self.counts(exc):
                runtime.failure(permit)
            elif permit.probe:
                runtime.success(permit)  # the service answered; the request was bad
            raise
        runtime.success(permit)
        return result

    async def acall(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        runtime = self.runtime
        snap = runtime.snapshot
        if snap is not None and snap.fast and monotonic() < snap.fresh_until:
            permit = Permit(snap.generation)  # closed: no database, no thread hop
        else:
            permit = await _off_loop(runtime.acquire)
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            if self.counts(exc):
                await _off_loop(runtime.failure, permit)
            elif permit.probe:
                await _off_loop(runtime.success, permit)
            raise
        await _off_loop(runtime.success, permit)
        return result

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, *args, **kwargs)

        return wrapper

    # --- context managers ------------------------------------------------------------
    # Permits live in a context variable, so one instance can guard blocks in
    # several threads or asyncio tasks at once.
    def _push(self, permit: Permit) -> None:
        _open_permits.set((*_open_permits.get(), (id(self), permit)))

    def _pop(self) -> Permit:
        stack = list(_open_permits.get())
        for index in range(len(stack) - 1, -1, -1):
            if stack[index][0] == id(self):
                permit = stack.pop(index)[1]
                _open_permits.set(tuple(stack))
                return permit
        raise RuntimeError("breaker context exited without being entered")

    def __enter__(self) -> CircuitBreaker:
        self._push(self.runtime.acquire())
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        permit = self._pop()
        if exc is None or (isinstance(exc, Exception) and not self.counts(exc)):
            self.runtime.success(permit)
        elif isinstance(exc, Exception):
            self.runtime.failure(permit)

    async def __aenter__(self) -> CircuitBreaker:
        self._push(await _off_loop(self.runtime.acquire))
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        permit = self._pop()
        if exc is None or (isinstance(exc, Exception) and not self.counts(exc)):
            await _off_loop(self.runtime.success, permit)
        elif isinstance(exc, Exception):
            await _off_loop(self.runtime.failure, permit)


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Database work of the slow path runs in a thread, never blocking the event loop."""
    return await asyncio.to_thread(fn, *args)


def breaker(name: str, **options: Any) -> CircuitBreaker:
    """The breaker ``name``, created in the database with settings defaults on first use."""
    return CircuitBreaker(name, **options)
