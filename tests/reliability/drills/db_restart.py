"""Database restart: PostgreSQL restarted (fast mode) while long jobs run.

Some jobs checkpoint (`demo.sleep`); some are `http.request` calls to a slow upstream
on 127.0.0.1 that never checkpoint. Each has ``max_attempts: 1``, so a restart that
cost an attempt would fail it. After the restart every job must have succeeded with
its one attempt, claimed once (one "claimed by" event), and the upstream must have
seen each call once and never two at the same time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.reliability.drills import DrillResult
from tests.reliability.drills._slow_upstream import JOB_PATH, PROVIDER, SlowUpstream
from tests.reliability.drills.stack import Stack

TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


def _job_rows(stack: Stack, ids: list[str]) -> dict[str, dict[str, Any]]:
    with stack.connect() as conn:
        rows = conn.execute(
            "SELECT j.id::text, j.status, j.attempts, j.error_code,"
            " (SELECT count(*) FROM jobs_jobevent e WHERE e.job_id = j.id"
            "   AND e.message LIKE 'claimed by %%') AS claims"
            " FROM jobs_job j WHERE j.id = ANY(%s::uuid[])",
            [ids],
        ).fetchall()
    return {
        row[0]: {"status": row[1], "attempts": row[2], "error_code": row[3], "claims": row[4]}
        for row in rows
    }


def _wait_for(stack: Stack, ids: list[str], statuses: tuple[str, ...], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _job_rows(stack, ids)
        if len(rows) == len(ids) and all(r["status"] in statuses for r in rows.values()):
            return True
        time.sleep(0.2)
    return False


def _create_after_restart(stack: Stack) -> tuple[str | None, float]:
    """A job created as soon as the service takes one again (the same Idempotency-Key on
    every try, so a lost answer cannot make two); its id and when it was acknowledged."""
    key = f"db-restart-{time.time_ns()}"
    deadline = time.monotonic() + 30
    with stack.api("client") as api:
        while time.monotonic() < deadline:
            answer = api.post(
                "/api/v1/jobs/",
                json={"kind": "demo.sleep", "payload": {"seconds": 0}},
                headers={"Idempotency-Key": key},
            )
            if answer.status_code in (200, 201):
                return answer.json()["id"], time.monotonic()
            time.sleep(0.1)
    return None, time.monotonic()


def _cluster_status_back(stack: Stack, since: float) -> float | None:
    """Seconds from ``since`` until health sees the worker cluster's status saved after the
    restart (it expires 3 s after the last save): whether django-q2's sentinel reconnected."""
    time.sleep(4)  # longer than the status's 3 s expiry: only a save after the restart counts
    deadline = time.monotonic() + 30
    with stack.api(None) as api:
        while time.monotonic() < deadline:
            checks = api.get("/api/v1/health/").json().get("checks", {})
            if checks.get("workers", {}).get("clusters", 0) >= 1:
                return time.monotonic() - since
            time.sleep(0.2)
    return None


def run(
    stack: Stack,
    upstream: SlowUpstream,
    *,
    restart: Callable[[], Any],
    checkpointing_jobs: int = 2,
    http_jobs: int = 1,
    job_seconds: float = 10.0,
) -> DrillResult:
    result = DrillResult("db_restart")
    stack.cancel_leftover_jobs()
    created: dict[str, str] = {}  # job id -> kind
    with stack.api("client") as api:
        for _ in range(checkpointing_jobs):
            body = {"kind": "demo.sleep", "payload": {"seconds": job_seconds}, "max_attempts": 1}
            answer = api.post("/api/v1/jobs/", json=body)
            answer.raise_for_status()
            created[answer.json()["id"]] = "demo.sleep"
        for n in range(http_jobs):
            payload = {"provider": PROVIDER, "method": "GET", "path": f"{JOB_PATH}/{n}"}
            body = {"kind": "http.request", "payload": payload, "max_attempts": 1}
            answer = api.post("/api/v1/jobs/", json=body)
            answer.raise_for_status()
            created[answer.json()["id"]] = "http.request"
    ids = list(created)
    result.check(
        _wait_for(stack, ids, ("running",), timeout=30), "the jobs were not all running in 30 s"
    )
    time.sleep(1.5)  # mid-job, after a heartbeat or two
    began = time.monotonic()
    restart()
    restart_seconds = time.monotonic() - began
    fresh_id, fresh_created = _create_after_restart(stack)
    fresh_done = fresh_id is not None and _wait_for(stack, [fresh_id], TERMINAL, timeout=60)
    fresh_seconds = time.monotonic() - fresh_created
    status_back = _cluster_status_back(stack, began)
    finished = _wait_for(stack, ids, TERMINAL, timeout=job_seconds + 90)
    rows = _job_rows(stack, ids)

    not_succeeded = {i: r for i, r in rows.items() if r["status"] != "succeeded"}
    charged = {i: r for i, r in rows.items() if r["attempts"] != 1}
    claimed_twice = {i: r for i, r in rows.items() if r["claims"] != 1}
    calls = dict(upstream.calls)
    concurrent = {path: n for path, n in upstream.most_at_once.items() if n > 1}
    repeated = {path: n for path, n in calls.items() if n != 1}
    result.figures.update(
        {
            "jobs": len(ids),
            "checkpointing_jobs": checkpointing_jobs,
            "http_jobs": http_jobs,
            "job_seconds": job_seconds,
            "restart_seconds": round(restart_seconds, 2),
            "seconds_until_all_finished": round(time.monotonic() - began, 1),
            "succeeded": len(ids) - len(not_succeeded),
            "attempts_charged_by_restart": sum(max(0, r["attempts"] - 1) for r in rows.values()),
            "upstream_calls": sum(calls.values()),
            "new_job_after_restart_seconds": round(fresh_seconds, 2),
            "worker_status_seen_after_seconds": status_back and round(status_back, 1),
            "most_concurrent_runs_of_one_job": max(upstream.most_at_once.values(), default=0),
        }
    )
    result.check(finished, "not every job finished within the bound")
    result.check(
        status_back is not None and status_back <= 10,
        f"the worker cluster's status was saved again only {status_back} s after the restart",
    )
    result.check(
        fresh_done and fresh_seconds <= 5,
        f"a job created right after the restart took {fresh_seconds:.1f} s to finish (> 5 s)",
    )
    result.check(not not_succeeded, f"jobs did not succeed: {not_succeeded}")
    result.check(not charged, f"an attempt other than the one was used: {charged}")
    result.check(not claimed_twice, f"jobs claimed more than once: {claimed_twice}")
    result.check(not concurrent, f"a job's call ran twice at the same time: {concurrent}")
    result.check(not repeated, f"upstream calls not made exactly once: {repeated}")
    result.check(len(calls) == http_jobs, f"upstream saw {len(calls)} of {http_jobs} job calls")
    return result
