"""The dashboard's 24 h timeline of breaker states, built from BreakerEvent rows.

One row per breaker that was not plainly closed at some time in the window (or is not
now): its state at the window's start comes from the last event before it, then each
event in the window starts a segment. Every query is bounded (TIMELINE_ROWS breakers,
EVENTS_PER_ROW events each) and walks the (breaker, -created_at) index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.urls import reverse
from django.utils import timezone

from controlplane.breakers.snapshot import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN

WINDOW = timedelta(hours=24)
TIMELINE_ROWS = 30  # the rest are counted, not drawn
EVENTS_PER_ROW = 200  # a row that changed more often shows its oldest part as "many changes"
MANY_CHANGES = "many_changes"
LABEL_WIDTH, BAR_WIDTH, ROW_HEIGHT, AXIS_HEIGHT = 190, 720, 20, 18

STATE_COLOURS = {
    CLOSED: "#81c784",
    OPEN: "#c62828",
    FORCED_OPEN: "#6a1b9a",
    HALF_OPEN: "#ef6c00",
    DISABLED: "#78909c",
    MANY_CHANGES: "#bdbdbd",
}
STATE_LABELS = {
    CLOSED: "closed",
    OPEN: "open",
    FORCED_OPEN: "forced open",
    HALF_OPEN: "half-open",
    DISABLED: "disabled",
    MANY_CHANGES: f"more than {EVENTS_PER_ROW} changes",
}

# Breakers that were not plainly closed at some time since %(start)s, or are not now; this
# service's own first, then the ones still not closed, then by name. ``total`` counts them
# all before the LIMIT, so the page can say how many it left out.
ROWS = """
SELECT b.id, b.name, b.owner_id, b.state, b.override, count(*) OVER () AS total
FROM breakers_breaker b
WHERE NOT (b.state = 'closed' AND b.override = '')
   OR EXISTS (SELECT 1 FROM breakers_breakerevent e
              WHERE e.breaker_id = b.id AND e.created_at >= %(start)s)
ORDER BY b.owner_id IS NOT NULL, (b.state = 'closed' AND b.override = ''), b.name
LIMIT %(rows)s
"""
# The newest events of each breaker in the window (one more than drawn: was it cut?).
IN_WINDOW = """
SELECT x.id, e.created_at, e.kind, e.from_state, e.to_state, e.action
FROM unnest(%(ids)s::bigint[]) AS x(id)
CROSS JOIN LATERAL (
    SELECT created_at, kind, from_state, to_state, details ->> 'action' AS action
    FROM breakers_breakerevent
    WHERE breaker_id = x.id AND created_at >= %(start)s
    ORDER BY created_at DESC, id DESC LIMIT %(limit)s
) e
"""
# Each breaker's last event before the window: its state when the window starts.
BEFORE_WINDOW = """
SELECT x.id, e.kind, e.to_state, e.action
FROM unnest(%(ids)s::bigint[]) AS x(id)
CROSS JOIN LATERAL (
    SELECT kind, to_state, details ->> 'action' AS action FROM breakers_breakerevent
    WHERE breaker_id = x.id AND created_at < %(start)s
    ORDER BY created_at DESC, id DESC LIMIT 1
) e
"""


@dataclass(frozen=True)
class Segment:
    state: str
    start: datetime
    end: datetime


def state_after(kind: str, to_state: str, action: str | None) -> str:
    """The state a caller met after this event. An override's event says what the person
    did (its to_state is the row's plain state: 'open' for forced open, 'closed' for
    disabled); no transition happens while an override holds, so one event is enough."""
    if kind == "override":
        if action == "force_open":
            return FORCED_OPEN
        if action == "disable":
            return DISABLED
    return to_state


def current_state(state: str, override: str) -> str:
    return override if override in (FORCED_OPEN, DISABLED) else state


def fold(
    initial: str, changes: list[tuple[datetime, str]], start: datetime, end: datetime
) -> list[Segment]:
    """Segments covering [start, end]: ``initial`` until the first change, then each
    change's state until the next. ``changes`` are (time, state after), oldest first; a
    change to the state already held extends the segment instead of starting one."""
    segments: list[Segment] = []
    state, since = initial, start
    for at, new in changes:
        at = min(max(at, start), end)
        if new == state:
            continue
        if at > since:
            segments.append(Segment(state, since, at))
        state, since = new, at
    segments.append(Segment(state, since, end))
    return segments


def _initial_state(
    row: dict[str, Any], before: tuple[str, str, str | None] | None, events: list[tuple]
) -> str:
    if before is not None:
        return state_after(*before)
    if events:
        # Created in the window, or its older events were purged (retention): the first
        # event says what it left. An override that expired was holding the row's state.
        _, kind, from_state, _, _ = events[0]
        if kind == "override_expired":
            return FORCED_OPEN if from_state == OPEN else DISABLED
        return from_state or CLOSED
    return current_state(row["state"], row["override"])  # nothing changed in the window


def breaker_rows(*, now: datetime | None = None) -> tuple[list[dict[str, Any]], int, datetime]:
    """(rows, how many breakers were left out, window start). Each row: the breaker's id,
    name, owner_id and its segments, oldest first."""
    with connection.cursor() as cursor:
        if now is None:
            cursor.execute("SELECT now()")  # the clock the events were stamped with
            now = cursor.fetchone()[0]
        start = now - WINDOW
        cursor.execute(ROWS, {"start": start, "rows": TIMELINE_ROWS})
        columns = [c.name for c in cursor.description]
        found = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
        ids = [row["id"] for row in found]
        events: dict[int, list[tuple]] = {i: [] for i in ids}
        before: dict[int, tuple[str, str, str | None]] = {}
        if ids:
            cursor.execute(IN_WINDOW, {"ids": ids, "start": start, "limit": EVENTS_PER_ROW + 1})
            for breaker_id, *event in cursor.fetchall():
                events[breaker_id].append(tuple(event))
            cursor.execute(BEFORE_WINDOW, {"ids": ids, "start": start})
            before = {breaker_id: (k, to, a) for breaker_id, k, to, a in cursor.fetchall()}
    rows = []
    for row in found:
        newest_first = events[row["id"]]
        cut = len(newest_first) > EVENTS_PER_ROW
        window = sorted(newest_first[:EVENTS_PER_ROW], key=lambda e: e[0])
        initial = MANY_CHANGES if cut else _initial_state(row, before.get(row["id"]), window)
        changes = [(at, state_after(kind, to, action)) for at, kind, _, to, action in window]
        rows.append(
            {
                "id": row["id"],
                "name": row["name"],
                "owner_id": row["owner_id"],
                "changes": len(window),
                "cut": cut,
                "segments": fold(initial, changes, start, now),
            }
        )
    hidden = (found[0]["total"] - len(found)) if found else 0
    return rows, hidden, start


def timeline(*, now: datetime | None = None) -> dict[str, Any]:
    """The SVG's geometry: rows with coloured segments, hour ticks, legend."""
    rows, hidden, start = breaker_rows(now=now)
    scale = BAR_WIDTH / WINDOW.total_seconds()
    drawn = []
    for index, row in enumerate(rows):
        y = AXIS_HEIGHT + index * ROW_HEIGHT
        segments = []
        for seg in row["segments"]:
            width = (seg.end - seg.start).total_seconds() * scale
            if seg.state != CLOSED:
                width = max(width, 1.5)  # a two-second opening still shows
            local_start, local_end = timezone.localtime(seg.start), timezone.localtime(seg.end)
            segments.append(
                {
                    "state": seg.state,
                    "x": round(LABEL_WIDTH + (seg.start - start).total_seconds() * scale, 2),
                    "width": round(width, 2),
                    "colour": STATE_COLOURS.get(seg.state, "#555"),
                    "title": f"{STATE_LABELS.get(seg.state, seg.state)} "
                    f"{local_start:%H:%M:%S} to {local_end:%H:%M:%S}",
                }
            )
        drawn.append(
            {
                **row,
                "y": y,
                "bar_y": y + 3,
                "text_y": y + 14,
                "url": reverse("admin:breakers_breaker_change", args=[row["id"]]),
                "state_now": row["segments"][-1].state,
                "segments": segments,
            }
        )
    first_tick = (start + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    ticks = [
        {
            "x": round(LABEL_WIDTH + (tick - start).total_seconds() * scale, 2),
            "label": f"{timezone.localtime(tick):%H:%M}",
            "major": timezone.localtime(tick).hour % 3 == 0,
        }
        for tick in (first_tick + timedelta(hours=h) for h in range(24))
        if tick <= start + WINDOW
    ]
    return {
        "rows": drawn,
        "hidden": hidden,
        "ticks": ticks,
        "width": LABEL_WIDTH + BAR_WIDTH + 4,
        "height": AXIS_HEIGHT + max(len(drawn), 1) * ROW_HEIGHT,
        "label_width": LABEL_WIDTH,
        "bar_width": BAR_WIDTH,
        "bar_height": ROW_HEIGHT - 6,
        "legend": [(STATE_LABELS[s], colour) for s, colour in STATE_COLOURS.items()],
    }
