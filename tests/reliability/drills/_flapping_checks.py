"""The flapping drill's invariants, checked on what was observed (see flapping.py).

Three independent records are joined: what the upstream received (``Hit``), what each client
call returned (the children's JSON lines, attempts attributed by ``X-Request-Id``), and the
database's BreakerEvent / ErrorRecord rows. Wall-clock times compare directly: the upstream,
the children and PostgreSQL's now() share this host's clock.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.reliability.drills import DrillResult
from tests.reliability.drills._flapping_budget import check_budget
from tests.reliability.drills._flapping_records import check_end, check_error_records, check_jobs
from tests.reliability.drills._flapping_upstream import (
    CLIENT_TIMEOUT,
    JOB_PATH,
    OPEN_CODE,
    Hit,
)
from tests.reliability.drills.flapping import CLIENTS, FAILING, GRACE
from tests.reliability.drills.stack import Stack

CONFIG = "failure_threshold, cooldown_seconds, max_cooldown_seconds, half_open_max_probes"


@dataclass
class Observed:
    windows: list[dict[str, Any]]  # the phases as run: index, kind, retry_after, start, end
    calls: list[dict[str, Any]]  # one per client call
    hits: list[Hit]  # every non-health request the upstream received during the phases
    ready: list[dict[str, Any]]  # each child's effective client settings
    jobs: dict[str, dict[str, Any]]  # the http.request jobs as the API reports them
    events: list[dict[str, Any]] = field(default_factory=list)
    breaker: dict[str, Any] = field(default_factory=dict)  # the row's policy
    by_call: dict[str, list[Hit]] = field(default_factory=dict)
    tagged: list[Hit] = field(default_factory=list)  # requests of the children's calls
    job_hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        labels = {r["label"] for r in self.ready}
        self.tagged = [h for h in self.hits if h.request_id.split("-")[0] in labels]
        self.job_hits = [h for h in self.hits if h.path.startswith(JOB_PATH)]
        by_call: dict[str, list[Hit]] = defaultdict(list)
        for hit in self.tagged:
            by_call[hit.request_id].append(hit)
        self.by_call = dict(by_call)

    @property
    def retry(self) -> dict[str, Any]:
        return self.ready[0]["retry"]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["outcome"] == "error"]

    def phase_of(self, at: float) -> int:
        for window in self.windows:
            if window["start"] <= at < window["end"]:
                return window["index"]
        return -1


def load(stack: Stack, observed: Observed, breaker_id: int) -> Observed:
    with stack.connect() as conn:
        rows = conn.execute(
            "SELECT generation, kind, from_state, to_state, EXTRACT(EPOCH FROM created_at)"
            " FROM breakers_breakerevent WHERE breaker_id = %s ORDER BY generation",
            [breaker_id],
        ).fetchall()
        config = conn.execute(
            f"SELECT {CONFIG} FROM breakers_breaker WHERE id = %s",  # noqa: S608
            [breaker_id],
        ).fetchone()
    observed.events = [
        {"generation": g, "kind": k, "from": f, "to": t, "at": float(at)} for g, k, f, t, at in rows
    ]
    observed.breaker = dict(zip([c.strip() for c in CONFIG.split(",")], config, strict=True))
    return observed


def check_all(stack: Stack, result: DrillResult, observed: Observed, upstream_health: int) -> None:
    # The checks of what the database kept (records, jobs, the final state) are in
    # _flapping_records.py.
    check_calls(result, observed, upstream_health)
    check_no_storm(result, observed)
    check_trips_and_closes(result, observed)
    check_open_periods(result, observed)
    check_retry_after(result, observed)
    check_budget(result, observed)
    check_error_records(stack, result, observed)
    check_jobs(stack, result, observed)
    check_end(stack, result, observed)


def check_calls(result: DrillResult, obs: Observed, upstream_health: int) -> None:
    foreign = len(obs.hits) - len(obs.tagged) - len(obs.job_hits)
    result.figures.update(
        client_calls=len(obs.calls),
        calls_ok=sum(c["outcome"] == "ok" for c in obs.calls),
        calls_failed=len(obs.failed),
        fail_fast_calls=sum(c["code"] == OPEN_CODE for c in obs.failed),
        upstream_requests=len(obs.tagged),
        upstream_requests_all=len(obs.hits),
        job_requests=len(obs.job_hits),
        foreign_requests=foreign,
        health_probes=upstream_health,
        ratio=round(len(obs.tagged) / len(obs.calls), 3) if obs.calls else None,
        max_requests_per_call=max((len(v) for v in obs.by_call.values()), default=0),
    )
    result.check(
        all(r["listening"] for r in obs.ready),
        "a client process never started LISTENing for breaker changes",
    )
    result.check(
        all(abs(float(r["timeout"]) - CLIENT_TIMEOUT) < 1e-6 for r in obs.ready),
        f"the provider timeout did not reach the client: {[r['timeout'] for r in obs.ready]}",
    )
    result.check(len(obs.calls) >= 50, f"only {len(obs.calls)} client calls were made")
    crashes = [c for c in obs.calls if c["outcome"] == "crash"]
    result.check(not crashes, f"client calls raised a non-UserFacingError: {crashes[:3]}")
    unknown = sorted(set(obs.by_call) - {c["call"] for c in obs.calls})
    result.check(not unknown, f"upstream requests for calls never reported: {unknown[:5]}")


def check_no_storm(result: DrillResult, obs: Observed) -> None:
    """Each call within its attempts and deadline; each phase within what a breaker lets by."""
    attempts = int(obs.retry["max_attempts"])
    deadline = obs.retry["deadline"]
    storm = {cid: len(v) for cid, v in obs.by_call.items() if len(v) > attempts}
    result.check(not storm, f"calls reached the upstream more than {attempts} times: {storm}")
    result.check(
        len(obs.tagged) <= len(obs.calls) * attempts,
        f"{len(obs.tagged)} upstream requests for {len(obs.calls)} calls x {attempts} attempts",
    )
    if deadline is not None:
        late = {
            cid: round(v[-1].at - v[0].at, 2)
            for cid, v in obs.by_call.items()
            if v[-1].at - v[0].at > float(deadline)
        }
        result.check(not late, f"retries ran past RETRY_DEADLINE={deadline}: {late}")
    threshold = obs.breaker["failure_threshold"]
    probes = obs.breaker["half_open_max_probes"]
    phases = []
    for window in obs.windows:
        index, kind = window["index"], window["kind"]
        received = [h for h in obs.hits if h.phase == index]
        mine = [h for h in obs.tagged if h.phase == index]
        started = [c for c in obs.calls if obs.phase_of(c["start"]) == index]
        half_opens = [
            e
            for e in obs.events
            if e["to"] == "half_open" and window["start"] <= e["at"] < window["end"]
        ]
        phases.append(
            {
                "phase": index,
                "kind": kind,
                "seconds": round(window["end"] - window["start"], 1),
                "calls": len(started),
                "upstream_requests": len(received),
                "fail_fast": sum(c.get("code") == OPEN_CODE for c in started),
                "half_opens": len(half_opens),
            }
        )
        # a call still running when the phase began may retry into it: one per process
        allowed = (len(started) + CLIENTS) * attempts
        result.check(
            len(mine) <= allowed,
            f"phase {index} ({kind}): {len(mine)} upstream requests for {len(started)} calls"
            f" (+{CLIENTS} in flight) x {attempts} attempts",
        )
        if kind in FAILING:
            # What a breaker lets by: the threshold; requests in flight when it opened or
            # whose success was flushed late (2 per caller, the worker included); the probes.
            budget = threshold + 2 * (CLIENTS + 1) + probes * len(half_opens)
            result.check(
                len(received) <= budget,
                f"phase {index} ({kind}): the upstream got {len(received)} requests, more than"
                f" the breaker should let by ({budget}): a retry storm",
            )
    result.figures["phases"] = phases


def check_trips_and_closes(result: DrillResult, obs: Observed) -> None:
    """Opens in every failing phase, not before the threshold; closes after each."""
    events = obs.events
    trips = [e for e in events if e["to"] == "open" and e["from"] == "closed"]
    closes = [e for e in events if e["to"] == "closed" and e["from"] == "half_open"]
    result.figures.update(
        breaker_events=len(events),
        trips=len(trips),
        open_transitions=sum(e["to"] == "open" for e in events),
        half_open_transitions=sum(e["to"] == "half_open" for e in events),
        close_transitions=len(closes),
    )
    generations = [e["generation"] for e in events]
    result.check(
        bool(events) and generations == list(range(generations[0], generations[0] + len(events))),
        f"breaker generations are not one event each: {generations}",
    )
    windows = obs.windows
    for window in windows:
        index, kind = window["index"], window["kind"]
        if kind not in FAILING:
            continue
        opened = [e for e in trips if window["start"] <= e["at"] < window["end"] + GRACE]
        result.check(bool(opened), f"phase {index} ({kind}): the breaker never opened")
        if index + 1 < len(windows):
            after = windows[index + 1]
            closed = [e for e in closes if after["start"] <= e["at"] < after["end"]]
            result.check(
                bool(closed), f"phase {index + 1} (healthy after {kind}): the breaker did not close"
            )
    result.check(
        not [e for e in trips if e["at"] < windows[0]["end"]],
        "the breaker opened while the upstream was healthy",
    )
    threshold = obs.breaker["failure_threshold"]
    failing = [h for h in obs.hits if h.status != 200]
    since = 0.0
    for trip in trips:
        before = [h for h in failing if since <= h.at <= trip["at"]]
        result.check(
            len(before) >= threshold,
            f"the breaker opened (generation {trip['generation']}) after only {len(before)}"
            f" failed upstream requests (threshold {threshold})",
        )
        later = [e["at"] for e in closes if e["at"] > trip["at"]]
        since = later[0] if later else float("inf")


def check_open_periods(result: DrillResult, obs: Observed) -> None:
    """Open: nothing reaches the upstream, for at least the cooldown. Half-open: the probes."""
    events = obs.events
    cooldown = min(obs.breaker["cooldown_seconds"], obs.breaker["max_cooldown_seconds"])
    probes = obs.breaker["half_open_max_probes"]
    leaks: list[str] = []
    in_grace = 0
    max_probe_requests = 0
    for position, event in enumerate(events):
        following = events[position + 1] if position + 1 < len(events) else None
        end = following["at"] if following else float("inf")
        during = [h for h in obs.hits if event["at"] <= h.at < end]
        if event["to"] == "open":
            if following is not None and following["to"] == "half_open":
                held = end - event["at"]
                result.check(
                    held >= cooldown - 0.01,
                    f"generation {event['generation']}: open for only {held:.2f} s"
                    f" (cooldown {cooldown} s)",
                )
            late = [h for h in during if h.at >= event["at"] + GRACE]
            in_grace += len(during) - len(late)
            leaks += [f"{h.request_id or h.path} at +{h.at - event['at']:.2f} s" for h in late]
        elif event["to"] == "half_open":
            max_probe_requests = max(max_probe_requests, len(during))
            result.check(
                len(during) <= probes,
                f"generation {event['generation']}: {len(during)} upstream requests while"
                f" half-open (at most {probes} probes)",
            )
    result.check(
        not leaks, f"{len(leaks)} upstream requests while the breaker was open: {leaks[:5]}"
    )

    refused = [c for c in obs.failed if c["code"] == OPEN_CODE]
    result.check(bool(refused), "no call ever failed fast on the open breaker")
    first_try = [c for c in refused if not c["retries"]]
    sent = [c["call"] for c in first_try if c["call"] in obs.by_call]
    result.check(not sent, f"calls refused by the breaker still reached the upstream: {sent[:5]}")
    # A refusal costs one database write (its ErrorRecord), never a wait for the upstream.
    latencies = sorted(c["end"] - c["start"] for c in first_try)
    median = latencies[len(latencies) // 2] if latencies else None
    result.check(
        median is not None and median < CLIENT_TIMEOUT / 4,
        f"calls refused by the breaker were not fast: median {median} s",
    )
    into_open = [
        c["call"] for c in obs.calls for r in c["retries"] if r["exc"] == "CircuitOpenError"
    ]
    result.check(not into_open, f"calls retried into the open breaker: {into_open[:5]}")
    result.figures.update(
        # calls that met upstream failures, then had their retry refused: their record
        # says CIRCUIT_OPEN and keeps those answers in context.earlier_attempts
        refused_after_upstream_failures=sum(bool(c["retries"]) for c in refused),
        requests_while_open=len(leaks),
        requests_in_grace_after_open=in_grace,
        max_probe_requests=max_probe_requests,
        fail_fast_median_ms=round(median * 1000, 1) if median is not None else None,
        fail_fast_max_ms=round(latencies[-1] * 1000, 1) if latencies else None,
    )


def check_retry_after(result: DrillResult, obs: Observed) -> None:
    """After a 429 with Retry-After N the call's next request waits min(N, RETRY_AFTER_CAP)."""
    cap = float(obs.retry["retry_after_cap"])
    gaps: dict[int, list[float]] = defaultdict(list)
    short: list[str] = []
    for cid, requests in obs.by_call.items():
        for first, second in itertools.pairwise(requests):
            if first.status != 429:
                continue
            asked = obs.windows[first.phase]["retry_after"]
            gap = second.at - first.at
            gaps[asked].append(gap)
            if gap < min(float(asked), cap):
                short.append(f"{cid}: {gap:.2f} s after Retry-After {asked}")
    planned = [
        r for c in obs.calls for r in c["retries"] if r["status"] == 429 and r["retry_after"]
    ]
    ignored = [r for r in planned if abs(r["delay"] - min(float(r["retry_after"]), cap)) > 1e-6]
    every = sorted(itertools.chain.from_iterable(gaps.values()))
    result.figures.update(
        retry_after_pairs=len(every),
        min_retry_after_gap_s=round(every[0], 3) if every else None,
        retry_after_gaps_s={str(k): [round(g, 3) for g in v] for k, v in sorted(gaps.items())},
    )
    for window in obs.windows:
        if window["kind"] == "429":
            result.check(
                bool(gaps.get(window["retry_after"])),
                f"phase {window['index']}: no retry after a 429 with Retry-After"
                f" {window['retry_after']} was observed",
            )
    result.check(not short, f"retries sooner than Retry-After (cap {cap} s): {short[:5]}")
    result.check(not ignored, f"retry delays that ignore Retry-After: {ignored[:3]}")
