"""Jobs benchmark with a real worker cluster (runworker, 2 django-q2 workers), and the
same jobs through three peers in the same run, on the same bench database.

(a) throughput: --jobs demo.sleep jobs of 0 s created one by one: creates/s, and end to
    end (first create to last finish);
(b) enqueue -> running latency, p50/p95: --latency-jobs jobs created one at a time, each
    after the one before finished and a random pause (bench/_peers.py), from the wall
    clock just before the create call to the job's started_at;
(c) cancel latency: cancel requested -> job cancelled (both by the database's clock) for
    a running demo.sleep job (it checkpoints every 100 ms), p50/p95 over --cancels jobs;
(d) SIGKILL recovery: kill the whole worker process tree while 20 jobs run, restart,
    time until every job succeeded; lost jobs and concurrent duplicates (must be 0);
(e) SIGTERM: time from signal (to every worker process) to exit with 20 running jobs;
peers: (a) and (b) through bare django-q2 ``async_task`` (this project's Q_CLUSTER, the
    floor of our own stack), Procrastinate (LISTEN/NOTIFY) and django-tasks-db's
    db_worker, two worker processes each, timed the same way from the wall clock before
    the create to the first line of the task body (bench/_peer_*.py);
side_by_side: each of our figures with its ratio to the best peer's (for rates > 1 is
    better, for latencies < 1 is better; no peer measures cancellation here).
Prints one JSON object. Every figure is load-sensitive (2 cores shared with whatever else
runs on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import REPO, setup_bench_database
from _peers import latency_gaps, percentiles

from tests.reliability.drills.worker_crash import claim_anomalies

BASE_ENV = {
    "JOB_HEARTBEAT_SECONDS": "1",
    "JOB_MAINTENANCE_SECONDS": "0.5",
    "JOB_LEASE_SECONDS": "10",
    "JOB_DRAIN_SECONDS": "10",
    "LOG_LEVEL": "WARNING",
}


class Worker:
    def __init__(self, **env: str) -> None:
        import psutil

        self.psutil = psutil
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runworker"],
            cwd=REPO,
            env={**os.environ, **BASE_ENV, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(3)  # cluster up

    def tree(self) -> list[Any]:
        try:
            root = self.psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except self.psutil.Error:
            return []

    def signal_all(self, signum: int) -> None:
        for process in self.tree():
            with suppress(self.psutil.Error):  # already gone
                process.send_signal(signum)


def clean() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE jobs_jobevent, jobs_job CASCADE; DELETE FROM django_q_ormq; "
            "DELETE FROM django_q_task"
        )


def wait_all(ids: list[Any], statuses: set[str], timeout: float) -> float:
    from jobs.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Job.objects.filter(pk__in=ids).exclude(status__in=statuses).count() == 0:
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"jobs did not reach {statuses} within {timeout} s")


def run_peer(peer: str, url: str, jobs: int, latency_jobs: int) -> dict[str, Any]:
    """One peer through bench/_peer.py, in a process of its own."""
    counts = ["--jobs", str(jobs), "--latency-jobs", str(latency_jobs)]
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "_peer.py"), peer, "--url", url, *counts],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1:]}  # reported, not fatal
    return json.loads(out.stdout.strip().splitlines()[-1])


def side_by_side(result: dict[str, Any]) -> dict[str, Any]:
    """Our figures next to the best peer's, with ours / best."""
    peers = {name: peer for name, peer in result["peers"].items() if "error" not in peer}
    a, b = result["a_throughput"], result["b_enqueue_to_running"]
    ours = {
        "creates_per_second": (a["creates_per_second"], max),
        "jobs_per_second": (a["jobs_per_second"], max),
        "enqueue_to_running_p50_ms": (b["p50_ms"], min),
        "enqueue_to_running_p95_ms": (b["p95_ms"], min),
    }
    figures = {
        "creates_per_second": lambda p: p["creates_per_second"],
        "jobs_per_second": lambda p: p["jobs_per_second"],
        "enqueue_to_running_p50_ms": lambda p: p["enqueue_to_running"]["p50_ms"],
        "enqueue_to_running_p95_ms": lambda p: p["enqueue_to_running"]["p95_ms"],
    }
    table: dict[str, Any] = {}
    for figure, (value, best_of) in ours.items():
        row: dict[str, Any] = {"ours": value}
        row.update({name: figures[figure](peer) for name, peer in peers.items()})
        if peers:
            best = best_of(peers, key=lambda name, figure=figure: figures[figure](peers[name]))
            row["best_peer"] = best
            row["ours_vs_best_peer"] = round(value / figures[figure](peers[best]), 3)
        table[figure] = row
    cancel = result["c_cancel_latency"]
    table["cancel_to_cancelled_p95_ms"] = {"ours": cancel["p95_ms"], "best_peer": None}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=50)
    parser.add_argument("--cancels", type=int, default=50)
    parser.add_argument("--database", default="controlplane_bench_jobs")
    parser.add_argument(
        "--peers",
        nargs="*",
        default=["djangoq", "procrastinate", "tasks_db"],
        choices=["djangoq", "procrastinate", "tasks_db"],
    )
    args = parser.parse_args()
    url = setup_bench_database(args.database)
    os.environ["DATABASE_URL"] = url
    import logging

    logging.getLogger("django-q").setLevel(logging.WARNING)
    logging.getLogger("controlplane").setLevel(logging.WARNING)
    from jobs.actions import cancel_job, create_job
    from jobs.models import Job

    result: dict[str, Any] = {}
    clean()
    worker = Worker(Q_WORKERS="2")
    try:
        # (a) throughput
        started = time.monotonic()
        ids = [
            create_job(kind="demo.sleep", payload={"seconds": 0})[0].id for _ in range(args.jobs)
        ]
        enqueued = time.monotonic()
        finished = wait_all(ids, {"succeeded"}, timeout=600)
        result["a_throughput"] = {
            "jobs": args.jobs,
            "enqueue_seconds": round(enqueued - started, 2),
            "creates_per_second": round(args.jobs / (enqueued - started), 1),
            "end_to_end_seconds": round(finished - started, 2),
            "jobs_per_second": round(args.jobs / (finished - started), 1),
        }
        # (b) enqueue -> running
        latencies = []
        for gap in latency_gaps(args.latency_jobs):
            time.sleep(gap)
            asked = time.time()  # started_at is the database's clock, on this same machine
            job = create_job(kind="demo.sleep", payload={"seconds": 0})[0]
            wait_all([job.id], {"succeeded"}, timeout=30)
            job.refresh_from_db()
            latencies.append(job.started_at.timestamp() - asked)
        result["b_enqueue_to_running"] = percentiles(latencies)
        # (c) cancel latency
        latencies = []
        for _ in range(args.cancels):
            job = create_job(kind="demo.sleep", payload={"seconds": 30})[0]
            wait_all([job.id], {"running"}, timeout=30)
            cancel_job(job_id=job.id)
            wait_all([job.id], {"cancelled"}, timeout=30)
            job.refresh_from_db()
            # The database's clock at both ends: this script's 50 ms polling is not in it.
            latencies.append((job.finished_at - job.cancel_requested_at).total_seconds())
        result["c_cancel_latency"] = percentiles(latencies)
    finally:
        worker.signal_all(signal.SIGKILL)
        worker.proc.wait()

    result["peers"] = {
        peer: run_peer(peer, url, args.jobs, args.latency_jobs) for peer in args.peers
    }
    result["side_by_side"] = side_by_side(result)

    # (d) SIGKILL with 20 running jobs, then restart
    clean()
    worker = Worker(Q_WORKERS="20")
    ids = [create_job(kind="demo.sleep", payload={"seconds": 5})[0].id for _ in range(20)]
    wait_all(ids, {"running"}, timeout=60)
    worker.signal_all(signal.SIGKILL)
    worker.proc.wait()
    killed_at = time.monotonic()
    worker = Worker(Q_WORKERS="20")
    try:
        recovered = wait_all(ids, {"succeeded", "failed"}, timeout=120)
        statuses = dict(Job.objects.filter(pk__in=ids).values_list("id", "status"))
        with psycopg.connect(url) as conn:
            concurrent, _ = claim_anomalies(conn, [str(i) for i in ids])
        result["d_sigkill_recovery"] = {
            "jobs": len(ids),
            "lease_seconds": float(BASE_ENV["JOB_LEASE_SECONDS"]),
            "seconds_until_all_succeeded": round(recovered - killed_at, 2),
            "lost_jobs": sum(1 for s in statuses.values() if s != "succeeded"),
            "concurrent_duplicates": concurrent,
        }
        # (e) SIGTERM with 20 running jobs
        ids = [create_job(kind="demo.sleep", payload={"seconds": 60})[0].id for _ in range(20)]
        wait_all(ids, {"running"}, timeout=60)
        sent = time.monotonic()
        worker.signal_all(signal.SIGTERM)
        worker.proc.wait(timeout=120)
        exited = time.monotonic()
        left = len(worker.tree())
        result["e_sigterm"] = {
            "running_jobs": len(ids),
            "drain_seconds": float(BASE_ENV["JOB_DRAIN_SECONDS"]),
            "seconds_to_exit": round(exited - sent, 2),
            "processes_left": left,
            "jobs_requeued_worker_shutdown": Job.objects.filter(
                pk__in=ids, status="queued", error_code="worker_shutdown"
            ).count(),
        }
    finally:
        worker.signal_all(signal.SIGKILL)

    d, e = result["d_sigkill_recovery"], result["e_sigterm"]
    result["targets"] = {
        "a_jobs_per_second>=100": result["a_throughput"]["jobs_per_second"] >= 100,
        "b_p50_ms<=250": result["b_enqueue_to_running"]["p50_ms"] <= 250,
        "c_p95_ms<=1000": result["c_cancel_latency"]["p95_ms"] <= 1000,
        "d_no_loss_no_duplicates_within_lease+15s": d["lost_jobs"] == 0
        and d["concurrent_duplicates"] == 0
        and d["seconds_until_all_succeeded"] <= d["lease_seconds"] + 15,
        "e_exit_within_drain+5s": e["seconds_to_exit"] <= e["drain_seconds"] + 5,
    }
    # Issue 17's goals: at least the best peer's rates, dispatch and cancel without a poll.
    ratio = {k: row.get("ours_vs_best_peer") for k, row in result["side_by_side"].items()}
    result["targets_issue17"] = {
        "creates_per_second>=best_peer": ratio["creates_per_second"] is not None
        and ratio["creates_per_second"] >= 1.0,
        "jobs_per_second>=best_peer": ratio["jobs_per_second"] is not None
        and ratio["jobs_per_second"] >= 1.0,
        "b_p50_ms<=5": result["b_enqueue_to_running"]["p50_ms"] <= 5,
        "c_p95_ms<=50": result["c_cancel_latency"]["p95_ms"] <= 50,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
