"""What a process knows about one breaker: a snapshot of its row, and the permits it grants."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
FORCED_OPEN, DISABLED = "forced_open", "disabled"


def effective_state(state: str, override: str) -> str:
    """The state a caller meets: a forced-open override wins over the row's state (which
    the override also sets to open, but the label tells ops it was a person)."""
    return FORCED_OPEN if override == FORCED_OPEN else state


@dataclass(frozen=True)
class Snapshot:
    state: str
    generation: int
    override: str
    owner_id: int | None  # a client's breaker; None: this service's own
    fresh_until: float
    open_until: float | None  # monotonic
    override_until: float | None  # monotonic
    consecutive_failures: int
    rate_enabled: bool
    fail_open: bool
    failure_threshold: int
    cooldown_seconds: float
    half_open_max_probes: int
    # Half-open probes holding a live lease, and when the first lease ends (monotonic): a
    # probe slot is free again by then at the latest. As of this snapshot's read.
    probes_in_flight: int = 0
    probe_slot_free_at: float | None = None

    @property
    def effective_state(self) -> str:
        return effective_state(self.state, self.override)

    @property
    def fast(self) -> bool:
        """Permit without a database round trip (plain closed, or disabled forever)."""
        return self.override_until is None and (
            (self.state == CLOSED and self.override != FORCED_OPEN) or self.override == DISABLED
        )

    @property
    def track_successes(self) -> bool:
        return self.consecutive_failures > 0 or self.rate_enabled


def snapshot_from_row(row: dict[str, Any]) -> Snapshot:
    now = time.monotonic()
    return Snapshot(
        state=row["state"],
        generation=row["generation"],
        override=row["override"],
        owner_id=row["owner_id"],
        fresh_until=now + settings.BREAKER_SNAPSHOT_TTL,
        open_until=None if row["open_left"] is None else now + row["open_left"],
        override_until=None if row["override_left"] is None else now + row["override_left"],
        consecutive_failures=row["consecutive_failures"],
        rate_enabled=row["failure_rate_threshold"] is not None,
        fail_open=row["fail_open"],
        failure_threshold=row["failure_threshold"],
        cooldown_seconds=row["cooldown_seconds"],
        half_open_max_probes=row["half_open_max_probes"],
        probes_in_flight=row["probes_in_flight"],
        probe_slot_free_at=(
            None if row["probe_slot_left"] is None else now + row["probe_slot_left"]
        ),
    )


def placeholder(generation: int) -> Snapshot:
    """A snapshot carrying only the generation a permit was granted in."""
    return Snapshot(
        state=CLOSED,
        generation=generation,
        override="",
        owner_id=None,
        fresh_until=0.0,
        open_until=None,
        override_until=None,
        consecutive_failures=0,
        rate_enabled=False,
        fail_open=True,
        failure_threshold=settings.BREAKER_DEFAULTS["failure_threshold"],
        cooldown_seconds=settings.BREAKER_DEFAULTS["cooldown_seconds"],
        half_open_max_probes=1,
    )


@dataclass(frozen=True)
class Permit:
    generation: int
    probe: bool = False  # a half-open probe: its outcome decides the breaker
    probe_lease: datetime | None = None
    local: bool = False  # granted from local state while the database was unreachable
