from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.errors.exceptions import ValidationError
from controlplane.resilience.retry import RetryPolicy, is_retryable, parse_retry_after

REQUEST = httpx.Request("GET", "http://upstream/")


def status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    response = httpx.Response(status, request=REQUEST, headers=headers)
    return httpx.HTTPStatusError(str(status), request=REQUEST, response=response)


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(initial_delay=0.1, factor=2, max_delay=1.0, jitter="none")
    assert [policy.backoff(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_full_jitter_stays_between_zero_and_the_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0, factor=2, max_delay=8.0, jitter="full")
    rng = random.Random(7)
    samples = [policy.backoff(3, rng) for _ in range(2000)]
    assert all(0 <= s <= 4.0 for s in samples)
    assert min(samples) < 0.5 and max(samples) > 3.5  # spread over the whole range


def test_proportional_jitter_is_ten_percent() -> None:
    policy = RetryPolicy(initial_delay=1.0, factor=2, max_delay=8.0, jitter="proportional")
    rng = random.Random(7)
    samples = [policy.backoff(2, rng) for _ in range(2000)]
    assert all(1.8 <= s <= 2.2 for s in samples)


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (httpx.ConnectError("refused", request=REQUEST), True),
        (httpx.ReadTimeout("slow", request=REQUEST), True),
        (status_error(429), True),
        (status_error(500), True),
        (status_error(502), True),
        (status_error(503), True),
        (status_error(504), True),
        (status_error(400), False),
        (status_error(404), False),
        (status_error(501), False),
        (ValidationError("bad"), False),
        (CircuitOpenError("x", 5.0, "open"), False),
        (ValueError("bug"), False),
    ],
)
def test_what_is_retryable(exc: BaseException, retryable: bool) -> None:
    assert is_retryable(exc) is retryable


def test_database_operational_errors_are_retryable() -> None:
    from django.db import OperationalError

    assert is_retryable(OperationalError("server closed the connection"))


def test_retry_after_in_seconds_and_as_a_date() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now)
        == 30.0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def failing(*errors: BaseException, then: str = "ok") -> tuple[list[int], object]:
    calls = [0]

    def fn() -> str:
        calls[0] += 1
        if calls[0] <= len(errors):
            raise errors[calls[0] - 1]
        return then

    return calls, fn


def test_it_retries_then_succeeds() -> None:
    fake = FakeTime()
    calls, fn = failing(status_error(503), status_error(502))
    policy = RetryPolicy(max_attempts=3, initial_delay=0.1, jitter="none")
    assert policy.call(fn, sleep=fake.sleep, clock=fake.clock) == "ok"
    assert calls[0] == 3
    assert fake.sleeps == [0.1, 0.2]


def test_it_stops_after_max_attempts() -> None:
    fake = FakeTime()
    calls, fn = failing(*[status_error(500)] * 5)
    with pytest.raises(httpx.HTTPStatusError):
        RetryPolicy(max_attempts=3, jitter="none").call(fn, sleep=fake.sleep, clock=fake.clock)
    assert calls[0] == 3


def test_it_never_retries_a_client_error() -> None:
    fake = FakeTime()
    calls, fn = failing(status_error(400))
    with pytest.raises(httpx.HTTPStatusError):
        RetryPolicy(max_attempts=5).call(fn, sleep=fake.sleep, clock=fake.clock)
    assert calls[0] == 1 and fake.sleeps == []


def test_retry_after_is_honoured_but_capped() -> None:
    fake = FakeTime()
    _, fn = failing(
        status_error(429, {"Retry-After": "3"}), status_error(429, {"Retry-After": "120"})
    )
    policy = RetryPolicy(max_attempts=3, retry_after_cap=10, deadline=None)
    assert policy.call(fn, sleep=fake.sleep, clock=fake.clock) == "ok"
    assert fake.sleeps == [3.0, 10.0]


def test_the_deadline_stops_retrying_instead_of_sleeping_past_it() -> None:
    fake = FakeTime()
    calls, fn = failing(
        status_error(429, {"Retry-After": "5"}), status_error(429, {"Retry-After": "5"})
    )
    with pytest.raises(httpx.HTTPStatusError):
        RetryPolicy(max_attempts=5, deadline=8.0).call(fn, sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == [5.0]  # a second 5 s wait would end after the 8 s deadline
    assert calls[0] == 2


def test_it_reads_its_defaults_from_settings(settings: object) -> None:
    settings.RETRY_DEFAULTS = {**settings.RETRY_DEFAULTS, "max_attempts": 7}
    assert RetryPolicy.from_settings().max_attempts == 7
