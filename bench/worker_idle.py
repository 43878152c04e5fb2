"""What an idle worker costs: CPU time of the whole runworker tree (runworker, sentinel,
pusher, monitor, --workers django-q2 workers) and database transactions, over --seconds
with no job in sight, after the cluster has settled. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import REPO, setup_bench_database


def tree_cpu_seconds(root: psutil.Process) -> float:
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with suppress(psutil.Error):  # one that just ended counts no more
            times = process.cpu_times()
            total += times.user + times.system
    return total


def transactions(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", default="controlplane_bench_jobs")
    args = parser.parse_args()
    url = setup_bench_database(args.database)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runworker"],
        cwd=REPO,
        env={**os.environ, "Q_WORKERS": str(args.workers), "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(args.settle)  # start-up work (imports, first passes) is not idle cost
        root = psutil.Process(proc.pid)
        cpu_before, xact_before, started = tree_cpu_seconds(root), transactions(url), time.time()
        time.sleep(args.seconds)
        cpu_after, xact_after, ended = tree_cpu_seconds(root), transactions(url), time.time()
        processes = len([root, *root.children(recursive=True)])
    finally:
        for process in psutil.Process(proc.pid).children(recursive=True):
            with suppress(psutil.Error):
                process.kill()
        proc.kill()
        proc.wait()
    elapsed = ended - started
    result: dict[str, Any] = {
        "idle_seconds": round(elapsed, 1),
        "processes": processes,
        "cpu_seconds": round(cpu_after - cpu_before, 3),
        "cpu_percent_of_one_core": round(100 * (cpu_after - cpu_before) / elapsed, 2),
        # Includes this script's two reads and maintenance's passes, like any deployment.
        "transactions_per_second": round((xact_after - xact_before) / elapsed, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
