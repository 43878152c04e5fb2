"""The sweep's catch-up of breaker changes skips what is handled: a reopen while the
breaker's "opened" still fires (the one-firing index suppressed it) is not replayed on
every sweep, nor a change older than one already announced."""

from __future__ import annotations

from typing import Any

from django.db import connection

from controlplane.breakers.models import Breaker, BreakerEvent
from controlplane.health import conditions
from controlplane.health.alert_sources import breaker_alert
from controlplane.health.models import AlertEvent


def change(breaker: Breaker, generation: int, from_state: str, to_state: str) -> None:
    BreakerEvent.objects.create(
        breaker=breaker,
        generation=generation,
        kind="transition",
        from_state=from_state,
        to_state=to_state,
    )


def replays(monkeypatch: Any) -> list[int]:
    """The generations the next catch-up hands to breaker_alert."""
    seen: list[int] = []
    monkeypatch.setattr(
        conditions, "breaker_alert", lambda **kwargs: seen.append(kwargs["generation"])
    )
    conditions.catch_up_breakers()
    return seen


def test_a_suppressed_reopen_is_not_replayed(
    make_breaker: Any, clean_alerts: None, monkeypatch: Any
) -> None:
    b = make_breaker()
    b.allows()
    row = Breaker.objects.get(name=b.name)
    change(row, 1, "closed", "open")
    breaker_alert(name=b.name, from_state="closed", to_state="open", generation=1)
    change(row, 2, "open", "half_open")
    change(row, 3, "half_open", "open")
    breaker_alert(name=b.name, from_state="half_open", to_state="open", generation=3)
    assert AlertEvent.objects.filter(subject=b.name).count() == 1  # suppressed: no key g3

    assert replays(monkeypatch) == []


def test_a_change_older_than_one_announced_is_not_replayed(
    make_breaker: Any, clean_alerts: None, monkeypatch: Any
) -> None:
    b = make_breaker()
    b.allows()
    row = Breaker.objects.get(name=b.name)
    change(row, 1, "closed", "open")  # its announcement was lost
    change(row, 3, "half_open", "closed")
    breaker_alert(name=b.name, from_state="half_open", to_state="closed", generation=3)
    change(row, 4, "closed", "open")  # lost too: still news

    assert replays(monkeypatch) == [4]


def test_the_generation_guard_has_an_index_on_subject(db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'alertevent_subject_kind'"
        )
        (definition,) = cursor.fetchone()
    assert "(subject, kind)" in definition
