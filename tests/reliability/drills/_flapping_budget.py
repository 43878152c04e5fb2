"""The flapping drill's retry-budget check: in the dead phase (the upstream answers 503, the
breaker is held closed) upstream requests per call stay within 1 + the budget.

What the budget promises (controlplane/resilience/budget.py): at any moment, the retries
counted in the window are at most ratio x the first attempts counted in it + the floor,
plus the overshoot of processes deciding between two syncs, (P - 1) x q, where q is the
most retries one process is granted within one sync interval (S). The drill turns that
into a bound from its own records (the children log when each retry was granted, the
upstream when each request arrived):

* The window (W) is a ring of SLOTS buckets (the children report SLOTS), so it always
  covers at least the last W x (SLOTS - 1) / SLOTS seconds: retries granted within an
  interval that long were all in the window when the last of them was granted, and are at
  most ratio x the first attempts that arrived from W + S + CLIENT_TIMEOUT before the
  interval (the longest a first attempt takes to be counted, and a view one sync old) to
  its end, + the floor, + the overshoot.
* The dead phase's grants are cut into such intervals and the bounds added up.

The drill prints the measured ratio (requests / calls), that bound, the nominal figure
1 + ratio + the floor's share, and what the same calls cost without a budget
(RETRY_MAX_ATTEMPTS per call, what the old code sent).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tests.reliability.drills import DrillResult
from tests.reliability.drills._flapping_upstream import BUDGET_CODE, CLIENT_TIMEOUT

if TYPE_CHECKING:
    from tests.reliability.drills._flapping_checks import Observed


def _most_within(times: list[float], seconds: float) -> int:
    """The most of ``times`` (sorted) that fall within any span of ``seconds``."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] > seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


def check_budget(result: DrillResult, obs: Observed) -> None:
    budget = obs.ready[0]["budget"]
    ratio, floor = float(budget["ratio"]), int(budget["floor"])
    window, sync = float(budget["window_seconds"]), float(budget["sync_seconds"])
    slots = int(budget["slots"])
    attempts = int(obs.retry["max_attempts"])
    span = window * (slots - 1) / slots
    lookback = window + sync + CLIENT_TIMEOUT
    firsts = sorted([hits[0].at for hits in obs.by_call.values()] + [h.at for h in obs.job_hits])
    for phase in (w for w in obs.windows if w["kind"] == "dead"):
        calls = [c for c in obs.calls if phase["start"] <= c["start"] < phase["end"]]
        sent = [obs.by_call.get(c["call"], []) for c in calls]
        requests = sum(len(hits) for hits in sent)
        granted = sorted(r["at"] for c in calls for r in c["retries"])
        # q: the most retries one process was granted within one sync interval
        most = max(
            (
                _most_within(
                    sorted(r["at"] for c in calls for r in c["retries"] if c["call"] in mine),
                    sync,
                )
                for mine in _calls_by_process(calls).values()
            ),
            default=0,
        )
        overshoot = (len(obs.ready) - 1) * most
        allowed, intervals = 0.0, 0
        if granted:
            intervals = max(1, math.ceil((granted[-1] - granted[0]) / span + 1e-9))
            for number in range(intervals):
                start = granted[0] + number * span
                counted = sum(start - lookback <= at < start + span for at in firsts)
                allowed += ratio * counted + floor + overshoot
        measured = requests / len(calls) if calls else None
        bound = (len(calls) + allowed) / len(calls) if calls else None
        refused = sum(c.get("code") == BUDGET_CODE for c in calls)
        result.figures.update(
            budget_phase_calls=len(calls),
            budget_phase_requests=requests,
            budget_phase_ratio=round(measured, 3) if measured is not None else None,
            budget_phase_bound=round(bound, 3) if bound is not None else None,
            budget_phase_nominal=round(1 + ratio + floor * max(intervals, 1) / len(calls), 3)
            if calls
            else None,
            budget_phase_without_budget=attempts,
            budget_phase_refused_calls=refused,
            budget_phase_overshoot_per_interval=overshoot,
        )
        result.check(len(calls) >= 20, f"dead phase: only {len(calls)} calls were made")
        result.check(
            all(hits for hits in sent),
            "dead phase: a call never reached the upstream (the breaker was to be held closed)",
        )
        result.check(
            len(granted) == requests - len(calls),
            f"dead phase: {requests - len(calls)} retries reached the upstream,"
            f" {len(granted)} were granted",
        )
        result.check(
            measured is not None and bound is not None and measured <= bound,
            f"dead phase: {requests} upstream requests for {len(calls)} calls"
            f" ({measured and round(measured, 3)} per call), above 1 + the retry budget"
            f" ({bound and round(bound, 3)}): retries were not bounded by the budget",
        )
        result.check(refused > 0, "dead phase: the retry budget never refused a retry")


def _calls_by_process(calls: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Call ids by the process that made them (ids are "LABEL-N")."""
    by_process: dict[str, set[str]] = {}
    for call in calls:
        by_process.setdefault(call["call"].split("-")[0], set()).add(call["call"])
    return by_process
