"""Drill: an upstream that flaps between healthy, 500, timeout, 429 and dead phases.

A real HTTP server on 127.0.0.1 (``_flapping_upstream.Upstream``) is the only provider
the stack knows (``provider_settings``). Four child Django processes (``_flapping_client``)
call it through ``client_for(provider)`` -- the real ServiceClient, the shared breaker in
the stack's PostgreSQL, the settings' RetryPolicy and retry budget -- at a steady pace
while the drill switches the upstream's behaviour, and two ``http.request`` jobs go through
the API and the real worker. Several caller processes (plus the worker), rather than one,
so the breaker and the retry budget are exercised as *shared*: one process's failures must
stop the other's calls (NOTIFY, generations), and their retries share one budget.

In the dead phase the upstream answers 503 to everything while the breaker's threshold is
raised out of reach (as an operator would for an upstream the breaker must not cut off),
so only the retry budget bounds the retries: upstream requests per call must stay within
1 + the budget (the ratio, plus the floor's and the documented overshoot's share; see
``_flapping_budget``), where the same calls without a budget cost RETRY_MAX_ATTEMPTS each.

Afterwards the drill joins three independent records -- what the upstream received, what
each client call returned, and the BreakerEvent / ErrorRecord rows -- and checks:

* the breaker trips in every failing phase (500, timeout, 429) and not before
  ``failure_threshold`` failures reached the upstream; it stays open at least
  ``cooldown_seconds``; it closes again in each following healthy phase;
* while open, calls fail fast: no upstream request after the open (beyond a short grace for
  requests already in flight), and at most ``half_open_max_probes`` per half-open period;
* after a 429 with ``Retry-After: N`` the same call's next request comes at least
  ``min(N, RETRY_AFTER_CAP)`` later (above the cap, retry.py waits the cap: the configured
  behaviour), the planned delay is exactly that, no retry is planned into an open breaker,
  and no call's attempts span more than RETRY_DEADLINE;
* no retry storm: each call reaches the upstream at most RETRY_MAX_ATTEMPTS times, overall
  and per phase upstream requests <= calls x attempts, and each failing phase costs the
  upstream only a threshold's worth of requests plus probes;
* every failed call's support_id resolves to an ErrorRecord with the breaker's name and a
  state consistent with the error (spot-checked through the support API too); a job
  submitted while the breaker is open waits for it (no attempt spent) and then runs;
* the breaker ends closed;
* in the dead phase, upstream requests per call stay within 1 + the retry budget, and a
  call whose retry the budget refused is recorded as RETRY_BUDGET_EXHAUSTED with the
  upstream answer it did not retry.

Breaker policy: set on this provider's breaker row (threshold CLIENTS + 1, cooldown 3 s, one
probe) before the clients start, as an operator would in the admin -- not through the
global BREAKER_* defaults, which every other drill sharing this stack would inherit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.reliability.drills import DrillResult
from tests.reliability.drills._flapping_upstream import (
    CALL_PATH,
    JOB_PATH,
    PROVIDER,
    Upstream,
)
from tests.reliability.drills.stack import REPO, Stack

CLIENTS = 4
CALL_INTERVAL = 0.25  # seconds between call starts, per client process
GRACE = 0.5  # requests permitted just before the open (in flight) may still arrive
UNTIL_CLOSED_MAX = 15.0
# The dead phase's threshold: out of reach, so the breaker never stops the calls.
OUT_OF_REACH = 1_000_000

BREAKER = {
    "policy": "consecutive",
    # One more than the callers: a Retry-After shorter than the cooldown is seen honoured only
    # if the callers' first 429s (each then waits) do not trip the breaker on their own.
    "failure_threshold": CLIENTS + 1,
    "window_seconds": 60,
    "failure_rate_threshold": None,
    "minimum_calls": 20,
    "cooldown_seconds": 3.0,
    "cooldown_growth": 1.0,
    "max_cooldown_seconds": 3.0,
    "half_open_max_probes": 1,
    "half_open_successes": 1,
    "probe_lease_seconds": 5.0,
    "fail_open": True,
}


@dataclass(frozen=True)
class Phase:
    kind: str  # healthy | error | timeout | 429 | dead
    seconds: float  # healthy phases marked until_closed: seconds kept after the close
    retry_after: int | None = None
    until_closed: bool = False


PHASES = (
    Phase("healthy", 4),
    Phase("error", 8),
    Phase("healthy", 2, until_closed=True),
    Phase("timeout", 8),
    Phase("healthy", 2, until_closed=True),
    Phase("429", 7, retry_after=2),
    Phase("healthy", 2, until_closed=True),
    Phase("429", 7, retry_after=6),  # above RETRY_AFTER_CAP: the cap applies
    Phase("healthy", 2, until_closed=True),
    Phase("dead", 10),  # the breaker held closed: only the retry budget bounds retries
    Phase("healthy", 3, until_closed=True),
)
# The bounded version in the test suite: one trip and recovery, then the dead phase.
BUDGET_PHASES = (
    Phase("healthy", 3),
    Phase("error", 6),
    Phase("healthy", 2, until_closed=True),
    Phase("dead", 10),
    Phase("healthy", 2, until_closed=True),
)
FAILING = ("error", "timeout", "429")  # the phases the breaker must cut short


# --- driving -------------------------------------------------------------------------------


def _configure_breaker(stack: Stack) -> dict[str, Any]:
    """Create (or re-configure) the provider's breaker row with the drill's policy."""
    from controlplane.breakers import sql

    with stack.connect() as conn:
        conn.execute(sql.ENSURE, {**BREAKER, "name": PROVIDER, "owner_id": None})
        assignments = ", ".join(f"{column} = %({column})s" for column in BREAKER)
        conn.execute(
            f"UPDATE breakers_breaker SET {assignments} WHERE name = %(name)s",  # noqa: S608
            {**BREAKER, "name": PROVIDER},
        )
        row = conn.execute(
            "SELECT id, state, override, generation FROM breakers_breaker WHERE name = %s",
            [PROVIDER],
        ).fetchone()
    return {"id": row[0], "state": row[1], "override": row[2], "generation": row[3]}


def _hold_breaker(stack: Stack, threshold: int) -> None:
    """Set the breaker's threshold (out of reach for the dead phase, back after it), its
    count of failures in a row restarted."""
    with stack.connect() as conn:
        conn.execute(
            "UPDATE breakers_breaker SET failure_threshold = %s, consecutive_failures = 0"
            " WHERE name = %s",
            [threshold, PROVIDER],
        )


def _breaker_state(stack: Stack) -> tuple[str, str]:
    with stack.connect() as conn:
        row = conn.execute(
            "SELECT state, override FROM breakers_breaker WHERE name = %s", [PROVIDER]
        ).fetchone()
    return (row[0], row[1]) if row else ("missing", "")


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        with suppress(ValueError):
            lines.append(json.loads(raw))
    return lines


def _start_clients(stack: Stack, stop_file: Path) -> list[tuple[subprocess.Popen, Path]]:
    clients = []
    for number in range(CLIENTS):
        label = f"c{number}"
        out = stack.workdir / f"flapping-{label}.jsonl"
        err = open(stack.workdir / f"flapping-{label}.log", "wb")  # noqa: SIM115 -- child's
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.drills._flapping_client",
                PROVIDER,
                label,
                CALL_PATH,
                str(CALL_INTERVAL),
                str(stop_file),
            ],
            cwd=REPO,
            env=stack.child_env(),
            stdout=open(out, "wb"),  # noqa: SIM115 -- the child owns it
            stderr=err,
        )
        clients.append((process, out))
    return clients


def _wait_ready(clients: list[tuple[subprocess.Popen, Path]]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 90
    while True:
        ready = [next((x for x in _read_lines(out) if x.get("ready")), None) for _, out in clients]
        if all(ready):
            return ready  # type: ignore[return-value]
        dead = [p.args for p, _ in clients if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"flapping clients did not start (exited: {dead})")
        time.sleep(0.1)


def _submit_job(stack: Stack, marker: str) -> str:
    with stack.api("client") as api:
        response = api.post(
            "/api/v1/jobs/",
            json={
                "kind": "http.request",
                "payload": {"provider": PROVIDER, "method": "GET", "path": f"{JOB_PATH}/{marker}"},
                "max_attempts": 1,
                "timeout_seconds": 30,
            },
        )
    response.raise_for_status()
    return response.json()["id"]


def _wait_job(stack: Stack, job_id: str, seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    with stack.api("client") as api:
        while True:
            job = api.get(f"/api/v1/jobs/{job_id}/").json()
            if job.get("status") in ("succeeded", "failed", "cancelled", "timed_out"):
                return job
            if time.monotonic() > deadline:
                return job
            time.sleep(0.2)


def _drive(
    stack: Stack, upstream: Upstream, result: DrillResult, phases: tuple[Phase, ...]
) -> dict[str, Any]:
    """Run the phases; returns the phase windows and the jobs submitted."""
    windows: list[dict[str, Any]] = []
    jobs: dict[str, str] = {}
    for index, phase in enumerate(phases):
        if phase.kind == "dead":
            _hold_breaker(stack, OUT_OF_REACH)
        upstream.set_phase(index, phase.kind, phase.retry_after)
        if index and phases[index - 1].kind == "dead":
            _hold_breaker(stack, BREAKER["failure_threshold"])
        start = time.time()
        closed_at = None
        if phase.until_closed:
            limit = time.monotonic() + UNTIL_CLOSED_MAX
            while time.monotonic() < limit and _breaker_state(stack) != ("closed", ""):
                time.sleep(0.1)
            if _breaker_state(stack) == ("closed", ""):
                closed_at = time.time()
            result.check(
                closed_at is not None,
                f"phase {index} ({phase.kind}): the breaker did not close within "
                f"{UNTIL_CLOSED_MAX:.0f} s of the upstream recovering",
            )
            if index == len(phases) - 1 and closed_at is not None:
                jobs["ok"] = _submit_job(stack, "ok")
        end_at = time.monotonic() + phase.seconds
        while time.monotonic() < end_at:
            if phase.kind == "error" and "open" not in jobs and _breaker_state(stack)[0] == "open":
                jobs["open"] = _submit_job(stack, "open")
            time.sleep(0.1)
        windows.append(
            {
                "index": index,
                "kind": phase.kind,
                "retry_after": phase.retry_after,
                "start": start,
                "end": time.time(),
                "closed_at": closed_at,
            }
        )
    return {"windows": windows, "jobs": jobs}


# --- the drill -----------------------------------------------------------------------------


def run(stack: Stack, upstream: Upstream, phases: tuple[Phase, ...] = PHASES) -> DrillResult:
    from tests.reliability.drills import _flapping_checks as checks

    result = DrillResult("flapping")
    configured = _configure_breaker(stack)
    result.check(
        (configured["state"], configured["override"]) == ("closed", ""),
        f"the breaker was not closed before the drill: {configured}",
    )
    stop_file = stack.workdir / "flapping.stop"
    stop_file.unlink(missing_ok=True)
    clients = _start_clients(stack, stop_file)
    try:
        ready = _wait_ready(clients)
        driven = _drive(stack, upstream, result, phases)
    finally:
        stop_file.touch()
        for process, _ in clients:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    observed = checks.Observed(
        windows=driven["windows"],
        calls=[line for _, out in clients for line in _read_lines(out) if "call" in line],
        hits=[h for h in upstream.recorded() if h.phase >= 0],
        ready=ready,
        jobs={name: _wait_job(stack, job_id) for name, job_id in driven["jobs"].items()},
    )
    checks.load(stack, observed, configured["id"])
    checks.check_all(stack, result, observed, upstream.health_hits)
    return result
