"""Worker crash: SIGKILL the whole worker cluster under load, restart it, count the damage.

Clients keep creating demo.sleep jobs through the API the whole time. When
jobs are running, every process of the cluster (sentinel, monitor, pusher,
workers) is killed at once; jobs keep arriving while it is down; then a new
cluster starts. Invariants: every job the API acknowledged (201) ends
succeeded (0 lost), no job was claimed while a previous claim was still
running, and none finished twice.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from tests.reliability.drills import DrillResult
from tests.reliability.drills.stack import Stack

TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


class JobFeeder(threading.Thread):
    """Creates jobs at a steady rate through the API; keeps the acknowledged ids."""

    def __init__(self, stack: Stack, limit: int, seconds: float, every: float) -> None:
        super().__init__(daemon=True)
        self.stack, self.limit, self.seconds, self.every = stack, limit, seconds, every
        self.acknowledged: list[str] = []
        self.refused: list[tuple[int, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.stack.api("client") as api:
            while len(self.acknowledged) < self.limit and not self.stop.is_set():
                response = api.post(
                    "/api/v1/jobs/",
                    json={"kind": "demo.sleep", "payload": {"seconds": self.seconds}},
                )
                if response.status_code == 201:
                    self.acknowledged.append(response.json()["id"])
                else:
                    self.refused.append((response.status_code, response.text[:200]))
                self.stop.wait(self.every)


def statuses(stack: Stack, ids: list[str]) -> dict[str, str]:
    with stack.connect() as conn:
        rows = conn.execute(
            "SELECT id::text, status FROM jobs_job WHERE id = ANY(%s::uuid[])", [ids]
        ).fetchall()
    return dict(rows)


def claim_anomalies(conn: psycopg.Connection, ids: list[str]) -> tuple[int, int]:
    """(claims while a previous claim was running, jobs that finished more than once),
    from the jobs' events (bench/jobs.py reads its SIGKILL figures with this too)."""
    events = conn.execute(
        "SELECT job_id::text, from_status, to_status FROM jobs_jobevent"
        " WHERE job_id = ANY(%s::uuid[]) ORDER BY job_id, created_at, id",
        [ids],
    ).fetchall()
    concurrent = 0
    running: dict[str, bool] = {}
    finishes: dict[str, int] = {}
    for job_id, from_status, to_status in events:
        if to_status == "running" and from_status == "queued":
            concurrent += running.get(job_id, False)
            running[job_id] = True
        elif from_status == "running" and to_status != "running":
            running[job_id] = False
        if to_status in TERMINAL:
            finishes[job_id] = finishes.get(job_id, 0) + 1
    finished_twice = sum(1 for n in finishes.values() if n > 1)
    return concurrent, finished_twice


def wait_running(stack: Stack, feeder: JobFeeder, at_least: int, timeout: float) -> int:
    """Wait until ``at_least`` of the drill's own jobs run; how many ran then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = sum(
            1 for s in statuses(stack, list(feeder.acknowledged)).values() if s == "running"
        )
        if running >= at_least:
            return running
        time.sleep(0.05)
    return 0


def run(
    stack: Stack, jobs: int = 40, job_seconds: float = 1.5, down_seconds: float = 2.0
) -> DrillResult:
    result = DrillResult("worker_crash")
    lease = float(stack.child_env()["JOB_LEASE_SECONDS"])
    result.figures["backlog_cancelled"] = stack.cancel_leftover_jobs()
    feeder = JobFeeder(stack, limit=jobs, seconds=job_seconds, every=0.1)
    feeder.start()
    running_at_kill = wait_running(stack, feeder, at_least=2, timeout=60)
    result.check(running_at_kill >= 2, "no jobs were running when the worker should be killed")
    killed_at = time.monotonic()
    stack.kill_worker()
    time.sleep(down_seconds)  # jobs keep arriving while no worker runs
    stack.start_worker()
    feeder.join(timeout=120)
    feeder.stop.set()
    ids = feeder.acknowledged
    deadline = time.monotonic() + lease + 60
    current: dict[str, Any] = {}
    while time.monotonic() < deadline:
        current = statuses(stack, ids)
        if len(current) == len(ids) and all(s in TERMINAL for s in current.values()):
            break
        time.sleep(0.2)
    recovered = time.monotonic() - killed_at
    with stack.connect() as conn:
        concurrent, finished_twice = claim_anomalies(conn, ids)
    with stack.connect() as conn:
        (rerun,) = conn.execute(
            "SELECT count(DISTINCT job_id) FROM jobs_jobevent WHERE job_id = ANY(%s::uuid[])"
            " AND from_status = 'running' AND to_status = 'queued'",
            [ids],
        ).fetchone()
    lost = [i for i in ids if current.get(i) != "succeeded"]
    result.figures.update(
        {
            "jobs_acknowledged": len(ids),
            "running_at_kill": running_at_kill,
            "jobs_requeued_after_kill": rerun,
            "lease_seconds": lease,
            "seconds_kill_to_all_done": round(recovered, 1),
            "lost_jobs": len(lost),
            "concurrent_claims": concurrent,
            "finished_twice": finished_twice,
            "create_refusals": len(feeder.refused),
        }
    )
    result.check(len(ids) == jobs, f"only {len(ids)} of {jobs} creates acknowledged")
    result.check(not feeder.refused, f"job creates refused: {feeder.refused[:3]}")
    result.check(not lost, f"{len(lost)} acknowledged jobs did not succeed: {lost[:5]}")
    result.check(concurrent == 0, f"{concurrent} jobs claimed while a claim was running")
    result.check(finished_twice == 0, f"{finished_twice} jobs finished more than once")
    result.check(rerun >= 1, "no job was re-queued: the kill did not hit a running job")
    return result
