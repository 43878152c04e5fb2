"""The dashboard's 24 h breaker timeline: state at the window's start from the last event
before it, one segment per state, bounded rows and events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from psycopg.types.json import Jsonb

from controlplane.health import breaker_timeline
from controlplane.health.breaker_timeline import MANY_CHANGES, Segment, breaker_rows, fold
from tests.breakers.conftest import fresh_name  # noqa: F401

H = timedelta(hours=1)
_generations = itertools.count(1)


def db_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def make(name: str, *, state: str = "closed", override: str = "", owner: Any = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO breakers_breaker (name, owner_id, state, generation, policy,"
            " failure_threshold, window_seconds, minimum_calls, cooldown_seconds,"
            " cooldown_growth, max_cooldown_seconds, half_open_max_probes, half_open_successes,"
            " probe_lease_seconds, fail_open, consecutive_failures, failure_times, rate_calls,"
            " rate_failures, total_failures, reopen_count, probe_leases, probe_successes,"
            " override, override_by, override_reason, created_at, updated_at)"
            " VALUES (%s, %s, %s, 0, 'consecutive', 5, 300, 20, 60, 1, 600, 1, 1, 30, true, 0,"
            " '{}', 0, 0, 0, 0, '{}', 0, %s, '', '', now(), now()) RETURNING id",
            [name, getattr(owner, "pk", None), state, override],
        )
        return cursor.fetchone()[0]


def event(
    breaker_id: int, at: datetime, from_state: str, to_state: str, *, action: str = ""
) -> None:
    kind = "override" if action else "transition"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO breakers_breakerevent (breaker_id, generation, kind, from_state,"
            " to_state, reason, actor, details, created_at) VALUES (%s, %s, %s, %s, %s, '', '',"
            " %s, %s)",
            [
                breaker_id,
                next(_generations),
                kind,
                from_state,
                to_state,
                Jsonb({"action": action} if action else {}),
                at,
            ],
        )


def states(segments: list[Segment]) -> list[str]:
    return [s.state for s in segments]


def test_it_folds_changes_into_segments_merging_repeats() -> None:
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    end = start + 24 * H
    segments = fold(
        "closed",
        [(start + 2 * H, "open"), (start + 3 * H, "open"), (start + 4 * H, "closed")],
        start,
        end,
    )
    assert segments == [
        Segment("closed", start, start + 2 * H),
        Segment("open", start + 2 * H, start + 4 * H),
        Segment("closed", start + 4 * H, end),
    ]
    # Two changes at one instant leave no empty segment between them.
    same = fold("closed", [(start + H, "open"), (start + H, "half_open")], start, end)
    assert same == [Segment("closed", start, start + H), Segment("half_open", start + H, end)]


def test_it_starts_the_window_in_the_state_of_the_last_event_before_it(
    fresh_name: str,  # noqa: F811 -- empty breaker tables, transactional
) -> None:
    now = db_now()
    breaker_id = make(fresh_name)
    event(breaker_id, now - 30 * H, "closed", "open")  # opened before the window
    event(breaker_id, now - 2 * H, "open", "half_open")
    event(breaker_id, now - 2 * H + timedelta(minutes=10), "half_open", "closed")
    (row,), hidden, start = breaker_rows(now=now)
    assert (row["name"], hidden, start) == (fresh_name, 0, now - 24 * H)
    assert row["segments"] == [
        Segment("open", start, now - 2 * H),
        Segment("half_open", now - 2 * H, now - 2 * H + timedelta(minutes=10)),
        Segment("closed", now - 2 * H + timedelta(minutes=10), now),
    ]


def test_it_shows_who_forced_or_disabled_a_breaker(
    fresh_name: str,  # noqa: F811
) -> None:
    now = db_now()
    breaker_id = make(fresh_name, override="disabled")
    event(breaker_id, now - 26 * H, "closed", "open", action="force_open")
    event(breaker_id, now - 3 * H, "open", "closed", action="reset")
    event(breaker_id, now - 1 * H, "closed", "closed", action="disable")
    (row,), _, start = breaker_rows(now=now)
    assert row["segments"] == [
        Segment("forced_open", start, now - 3 * H),
        Segment("closed", now - 3 * H, now - H),
        Segment("disabled", now - H, now),
    ]


def test_it_shows_only_breakers_not_closed_at_some_time_in_the_window(
    fresh_name: str,  # noqa: F811
) -> None:
    now = db_now()
    closed_all_day = make(fresh_name + "-quiet")
    event(closed_all_day, now - 30 * H, "closed", "open")
    event(closed_all_day, now - 29 * H, "open", "closed")
    make(fresh_name + "-never-used")
    # Open since before the window, its events purged: the row's own state says so.
    make(fresh_name + "-open", state="open")
    rows, hidden, start = breaker_rows(now=now)
    assert [(r["name"], states(r["segments"])) for r in rows] == [(fresh_name + "-open", ["open"])]
    assert rows[0]["segments"][0].start == start and hidden == 0


def test_it_takes_the_start_from_the_first_event_when_none_is_older(
    fresh_name: str,  # noqa: F811
) -> None:
    now = db_now()
    breaker_id = make(fresh_name)
    event(breaker_id, now - 5 * H, "half_open", "closed")  # its older events were purged
    (row,), _, _ = breaker_rows(now=now)
    assert states(row["segments"]) == ["half_open", "closed"]


def test_it_caps_the_rows_service_breakers_first_and_counts_the_rest(
    fresh_name: str,  # noqa: F811
    client_user: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(breaker_timeline, "TIMELINE_ROWS", 3)
    now = db_now()
    for n in range(5):
        make(f"0-client-{n}", state="open", owner=client_user)  # sort before the own ones
    make(fresh_name + "-b", state="open")
    make(fresh_name + "-a", state="half_open")
    recovered = make(fresh_name + "-c")
    event(recovered, now - 4 * H, "closed", "open")
    event(recovered, now - 3 * H, "open", "closed")
    rows, hidden, _ = breaker_rows(now=now)
    # Own breakers first (still not closed ones before the recovered one), then clients'.
    assert [r["name"] for r in rows] == [fresh_name + "-a", fresh_name + "-b", fresh_name + "-c"]
    assert hidden == 5


def test_a_flapping_breaker_draws_its_newest_changes_and_marks_the_rest(
    fresh_name: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(breaker_timeline, "EVENTS_PER_ROW", 4)
    now = db_now()
    breaker_id = make(fresh_name)
    for minute in range(10):
        to_state = "open" if minute % 2 == 0 else "closed"
        from_state = "closed" if to_state == "open" else "open"
        event(breaker_id, now - 2 * H + timedelta(minutes=minute), from_state, to_state)
    (row,), _, _ = breaker_rows(now=now)
    assert row["cut"] and row["changes"] == 4
    assert states(row["segments"]) == [MANY_CHANGES, "open", "closed", "open", "closed"]
    assert row["segments"][1].start == now - 2 * H + timedelta(minutes=6)


def test_it_reads_a_fixed_number_of_queries_however_many_breakers(
    fresh_name: str,  # noqa: F811
    django_assert_num_queries: Any,
) -> None:
    now = db_now()
    for n in range(20):
        breaker_id = make(f"{fresh_name}-{n}", state="open")
        event(breaker_id, now - 30 * H, "closed", "open")
        event(breaker_id, now - H, "half_open", "open")
    with django_assert_num_queries(4):  # now(), rows, events in the window, before it
        rows, _, _ = breaker_rows()
    assert len(rows) == 20


def test_the_dashboard_draws_one_row_per_breaker(
    fresh_name: str,  # noqa: F811
    ops_user: Any,
    client: Any,
) -> None:
    now = db_now()
    breaker_id = make(fresh_name, state="open")
    event(breaker_id, now - 2 * H, "closed", "open")
    client.force_login(ops_user)
    page = client.get("/admin/dashboard/").content.decode()
    svg = page.split('id="breaker-timeline"', 1)[1].split("</svg>", 1)[0]
    assert f'data-breaker="{fresh_name}" data-state="open"' in svg
    assert svg.count('class="segment segment-closed"') == 1
    assert svg.count('class="segment segment-open"') == 1
