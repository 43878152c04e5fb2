"""Retries with capped exponential backoff and jitter.

    delay(attempt) = min(max_delay, initial * factor ** (attempt - 1)), then jitter:
      full (default): uniform(0, delay);  proportional: delay * uniform(0.9, 1.1);  none.

Only retryable failures are retried (network errors and timeouts, 429, 500, 502,
503, 504, database OperationalError, UserFacingErrors marked retryable), never
while the breaker is open, within ``max_attempts`` and a total ``deadline``. A
``Retry-After`` (seconds or HTTP date) replaces the computed delay, capped by
``retry_after_cap`` and by what is left of the deadline. Written here rather
than on tenacity: Retry-After and the breaker rule would each need custom
wait/stop classes there, and this is shorter than that glue.

Given a ``budget`` (``controlplane.resilience.budget``; every ServiceClient passes its
upstream's), the first attempt is counted once it went out (not when the breaker refused
it), and each retry must be granted by the budget shared by every process; a refused retry
raises ``RetryBudgetExhaustedError`` instead, carrying the failure it did not retry.
Inside ``continuing(...)`` (a job's attempt after its first) the first attempt is itself a
retry of a call made before: it must be granted too, and is not counted as a first attempt.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from django.conf import settings
from django.db import OperationalError as DjangoOperationalError
from psycopg import OperationalError as PsycopgOperationalError

from controlplane.errors.exceptions import UserFacingError
from controlplane.lib.metrics import RETRY_ATTEMPTS

if TYPE_CHECKING:
    from controlplane.resilience.budget import RetryBudget

T = TypeVar("T")
logger = logging.getLogger("controlplane.retry")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_continuing: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "retry_continues_earlier_call", default=None
)


class EarlierAttemptFailed(Exception):
    """The failure a continued call would retry (see :func:`continuing`): what a budget
    refusal names when no call of this attempt went out."""


@contextmanager
def continuing(earlier: str | None) -> Iterator[None]:
    """Inside, every call through a RetryPolicy with a budget continues a logical call made
    before: a job's attempt after its first repeats the upstream calls of the one that
    failed. Its first attempt is then a retry: granted by the upstream's retry budget or
    refused (RetryBudgetExhaustedError, nothing sent), and never counted as a first attempt,
    which would raise the budget by the very retries it makes. ``earlier`` says what failed
    before (for that refusal); None: not continuing, nothing changes."""
    token = _continuing.set(earlier)
    try:
        yield
    finally:
        _continuing.reset(token)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def is_retryable(exc: BaseException) -> bool:
    if getattr(exc, "breaker_name", None):  # CircuitOpenError: never retry into an open breaker
        return False
    if isinstance(exc, httpx.TransportError):  # connect/read errors and timeouts
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRYABLE_STATUSES
    if isinstance(exc, DjangoOperationalError | PsycopgOperationalError):
        return True
    if isinstance(exc, UserFacingError):
        return exc.retryable
    return False


def retry_after_of(exc: BaseException) -> float | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return parse_retry_after(exc.response.headers.get("Retry-After"))
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_delay: float = 0.1
    factor: float = 2.0
    max_delay: float = 2.0
    jitter: str = "full"  # full | proportional | none
    deadline: float | None = 30.0  # seconds for all attempts, sleeps included
    retry_after_cap: float = 30.0
    retryable: Callable[[BaseException], bool] = field(default=is_retryable)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.jitter not in ("full", "proportional", "none"):
            raise ValueError("jitter must be full, proportional or none")

    @classmethod
    def from_settings(cls, **overrides: Any) -> RetryPolicy:
        return cls(**{**settings.RETRY_DEFAULTS, **overrides})

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay after failed attempt number ``attempt`` (1-based), jitter applied."""
        base = min(self.max_delay, self.initial_delay * self.factor ** (attempt - 1))
        rand = (rng or random).random()
        if self.jitter == "full":
            return base * rand
        if self.jitter == "proportional":
            return base * (0.9 + 0.2 * rand)
        return base

    def next_delay(self, attempt: int, exc: BaseException, remaining: float | None) -> float | None:
        """How long to wait before the next attempt, or None to give up now."""
        if attempt >= self.max_attempts or not self.retryable(exc):
            return None
        hinted = retry_after_of(exc)
        delay = min(hinted, self.retry_after_cap) if hinted is not None else self.backoff(attempt)
        if remaining is not None and delay >= remaining:
            return None  # the deadline would pass while waiting
        return delay

    def _after_failure(
        self,
        attempt: int,
        exc: Exception,
        started: float,
        clock: Callable[[], float],
        on_retry: Callable[[int, BaseException, float], None] | None,
        budget: RetryBudget | None = None,
    ) -> float | None:
        """The wait before the next attempt (counted and logged), or None to re-raise; raises
        the budget's refusal when the retry would exceed it."""
        remaining = None if self.deadline is None else self.deadline - (clock() - started)
        delay = self.next_delay(attempt, exc, remaining)
        if delay is None:
            return None
        if budget is not None and not budget.spend_retry():
            raise budget.refusal(exc, retry_after_of(exc)) from exc
        RETRY_ATTEMPTS.labels(type(exc).__name__).inc()
        if on_retry:
            on_retry(attempt, exc, delay)
        logger.info("retrying after %s (attempt %d) in %.3f s", type(exc).__name__, attempt, delay)
        return delay

    def call(
        self,
        fn: Callable[[], T],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
        budget: RetryBudget | None = None,
    ) -> T:
        started = clock()
        attempt = 0
        earlier = _continuing.get() if budget is not None else None
        if budget is not None and earlier is not None:
            budget.sync_if_due()
            _spend_on_continuing(budget, earlier)
        while True:
            attempt += 1
            try:
                result = fn()
            except Exception as exc:
                if budget is not None:
                    if earlier is None:
                        _count_first(attempt, exc, budget)
                    budget.sync_if_due()
                delay = self._after_failure(attempt, exc, started, clock, on_retry, budget)
                if delay is None:
                    raise
                sleep(delay)
            else:
                if budget is not None:
                    if earlier is None:
                        _count_first(attempt, None, budget)
                    budget.sync_if_due()
                return result

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
        budget: RetryBudget | None = None,
    ) -> T:
        started = clock()
        attempt = 0
        earlier = _continuing.get() if budget is not None else None
        if budget is not None and earlier is not None:
            if budget.sync_due():  # a round trip: off the event loop
                await asyncio.to_thread(budget.sync)
            _spend_on_continuing(budget, earlier)
        while True:
            attempt += 1
            try:
                result = await fn()
            except Exception as exc:
                if budget is not None:
                    if earlier is None:
                        _count_first(attempt, exc, budget)
                    if budget.sync_due():  # a round trip: off the event loop
                        await asyncio.to_thread(budget.sync)
                delay = self._after_failure(attempt, exc, started, clock, on_retry, budget)
                if delay is None:
                    raise
                await sleep(delay)
            else:
                if budget is not None:
                    if earlier is None:
                        _count_first(attempt, None, budget)
                    if budget.sync_due():
                        await asyncio.to_thread(budget.sync)
                return result


def is_continuing() -> bool:
    """Inside :func:`continuing` (with something that failed before)?"""
    return _continuing.get() is not None


def _spend_on_continuing(budget: RetryBudget, earlier: str) -> None:
    """The first attempt of a continued call is a retry: the budget grants it or it is not
    sent. (Spent before the call's breaker is asked, so callers that can ask it first do:
    ServiceClient.)"""
    if not budget.spend_retry():
        raise budget.refusal(EarlierAttemptFailed(earlier), None)


def _count_first(attempt: int, exc: BaseException | None, budget: RetryBudget) -> None:
    """Count a first attempt that reached the upstream: one the breaker refused was never
    sent. (A retry is counted when the budget grants it.)"""
    if attempt == 1 and not getattr(exc, "breaker_name", None):
        budget.count_first_attempt()
