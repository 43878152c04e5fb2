"""The jobs scenario of bench/jobs.py, run the same way for each peer job system.

A peer module (``bench/_peer_<name>.py``) defines two task bodies, ``noop(key)`` and
``record(key)`` (its first line takes the clock, then stores it in bench_peer_started), and
``run(url, jobs, latency_jobs) -> dict`` that starts two worker processes and hands
``scenario`` three callables. ``python bench/_peer.py NAME ...`` runs one peer and
prints its JSON, so each peer gets its own process and its own Django settings.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# When each recording job's body began (its own clock), one row per job key.
CREATE_STARTED = (
    "CREATE TABLE IF NOT EXISTS bench_peer_started "
    "(key text PRIMARY KEY, started double precision NOT NULL, pid integer NOT NULL)"
)
INSERT_STARTED = "INSERT INTO bench_peer_started (key, started, pid) VALUES (%s, %s, %s)"
WORKER_ENV = {"LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO)}
# Before each latency job a random pause up to this long, so that a create lands at a random
# point of a polling worker's cycle (created in lockstep right after the previous job
# finished, every job would wait a whole poll interval, not the average half).
LATENCY_GAP_SECONDS = 1.0


def latency_gaps(count: int) -> list[float]:
    """The same pauses for every system (a fixed seed)."""
    rng = random.Random(17)
    return [rng.uniform(0, LATENCY_GAP_SECONDS) for _ in range(count)]


def percentiles(samples: list[float]) -> dict[str, float]:
    """n, p50, p95 and max in milliseconds of samples in seconds."""
    samples = sorted(samples)
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(samples[-1] * 1000, 1),
    }


def poll(ready: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> float:
    """Monotonic time at which ``ready()`` first held; raises after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(every)
    return time.monotonic()


class Workers:
    """Worker processes, each in its own session so one killpg ends it with its children."""

    def __init__(self, commands: Sequence[Sequence[str]], **env: str) -> None:
        self.procs = [
            subprocess.Popen(
                list(command),
                cwd=REPO,
                env={**os.environ, **WORKER_ENV, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for command in commands
        ]

    def kill(self) -> None:
        for proc in self.procs:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def scenario(
    *,
    conn: Any,
    create: Callable[[str], None],
    create_recording: Callable[[str], None],
    succeeded: Callable[[], int],
    jobs: int,
    latency_jobs: int,
) -> dict[str, Any]:
    """Throughput of ``jobs`` no-op jobs created one by one, then enqueue -> running of
    ``latency_jobs`` recording jobs, each created once the one before finished (no backlog)
    and a pause from ``latency_gaps`` passed.

    ``conn`` is an autocommit psycopg connection to the bench database; ``succeeded()``
    counts the jobs this peer has finished since the run began (its tables start empty).
    Runs a warm-up job first: the workers are up once it ran."""
    conn.execute(CREATE_STARTED)
    conn.execute("TRUNCATE bench_peer_started")

    def started_at(key: str) -> float | None:
        row = conn.execute(
            "SELECT started FROM bench_peer_started WHERE key = %s", [key]
        ).fetchone()
        return row[0] if row else None

    create_recording("warm-up")
    poll(lambda: started_at("warm-up") is not None, 120, "warm-up job")
    poll(lambda: succeeded() >= 1, 30, "warm-up job finished")
    time.sleep(2)  # the second worker process comes up alongside the first
    done = succeeded()

    started = time.monotonic()
    for n in range(jobs):
        create(f"noop-{n}")
    created = time.monotonic()
    finished = poll(lambda: succeeded() >= done + jobs, 600, f"{jobs} no-op jobs")
    done += jobs

    latencies = []
    for n, gap in enumerate(latency_gaps(latency_jobs)):
        key = f"latency-{n}"
        time.sleep(gap)
        asked = time.time()  # the body's clock is the same machine's wall clock
        create_recording(key)
        poll(lambda key=key: started_at(key) is not None, 30, f"job {key} running", every=0.005)
        latencies.append(started_at(key) - asked)
        done += 1
        poll(lambda done=done: succeeded() >= done, 30, f"job {key} finished", every=0.005)
    return {
        "jobs": jobs,
        "create_seconds": round(created - started, 3),
        "creates_per_second": round(jobs / (created - started), 1),
        "end_to_end_seconds": round(finished - started, 3),
        "jobs_per_second": round(jobs / (finished - started), 1),
        "enqueue_to_running": percentiles(latencies),
    }
