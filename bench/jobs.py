"""Jobs benchmark with a real worker cluster (runworker, 2 django-q2 workers).

(a) throughput: --jobs demo.sleep jobs of 0 s, end to end (first create to last finish);
(b) enqueue -> running latency, p50/p95 (jobs created one at a time, no backlog);
(c) cancel latency: cancel requested -> job cancelled (both by the database's clock) for
    a running demo.sleep job (it checkpoints every 100 ms), p50/p95 over --cancels jobs;
(d) SIGKILL recovery: kill the whole worker process tree while 20 jobs run, restart,
    time until every job succeeded; lost jobs and concurrent duplicates (must be 0);
(e) SIGTERM: time from signal (to every worker process) to exit with 20 running jobs.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import REPO, setup_bench_database

from tests.reliability.drills.worker_crash import claim_anomalies

BASE_ENV = {
    "JOB_HEARTBEAT_SECONDS": "1",
    "JOB_MAINTENANCE_SECONDS": "0.5",
    "JOB_LEASE_SECONDS": "10",
    "JOB_DRAIN_SECONDS": "10",
    "LOG_LEVEL": "WARNING",
}


def pct(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(samples[-1] * 1000, 1),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-jobs", type=int, default=50)
    parser.add_argument("--cancels", type=int, default=50)
    parser.add_argument("--database", default="controlplane_bench_jobs")
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
            "end_to_end_seconds": round(finished - started, 2),
            "jobs_per_second": round(args.jobs / (finished - started), 1),
        }
        # (b) enqueue -> running
        latencies = []
        for _ in range(args.latency_jobs):
            job = create_job(kind="demo.sleep", payload={"seconds": 0})[0]
            wait_all([job.id], {"succeeded"}, timeout=30)
            job.refresh_from_db()
            latencies.append((job.started_at - job.created_at).total_seconds())
        result["b_enqueue_to_running"] = pct(latencies)
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
        result["c_cancel_latency"] = pct(latencies)
    finally:
        worker.signal_all(signal.SIGKILL)
        worker.proc.wait()

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
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
