"""`make drills`: the reliability drills against a real service of their own.

Starts an embedded PostgreSQL in var/drills/pgdata (fresh each run, so the
outage drill may stop it without touching anything else), gunicorn with 2
workers and a runworker cluster on 127.0.0.1, runs every drill, stops
everything, prints a table and writes bench/results/drills.json. Exits 1 when
any invariant failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.reliability.drills import DrillResult  # noqa: E402
from tests.reliability.drills.stack import Stack  # noqa: E402

DRILLS = (
    "security",
    "abuse",
    "fuzz",
    "flapping",
    "load",
    "worker_crash",
    "alerting",
    "spool_faults",
    "db_outage",
    "db_restart",
    "db_blackhole",
)


def run_drill(name: str, fn: Callable[[], DrillResult]) -> DrillResult:
    print(f"== drill {name}", flush=True)
    started = time.monotonic()
    try:
        result = fn()
    except Exception:  # a drill that crashed is a failed drill, with its traceback
        result = DrillResult(name, failures=[f"drill crashed:\n{traceback.format_exc()}"])
    result.seconds = round(time.monotonic() - started, 1)
    print(f"   {'PASS' if result.passed else 'FAIL'} in {result.seconds} s", flush=True)
    for failure in result.failures[:20]:
        print(f"   - {failure}", flush=True)
    return result


def table(results: list[DrillResult]) -> str:
    lines = [f"{'drill':<14} {'result':<6} {'seconds':>8}  figures", "-" * 100]
    for result in results:
        figures = ", ".join(
            f"{k}={v}" for k, v in result.figures.items() if not isinstance(v, dict | list)
        )
        lines.append(
            f"{result.name:<14} {'PASS' if result.passed else 'FAIL':<6} "
            f"{result.seconds:>8.1f}  {figures}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(DRILLS), help="comma-separated drills")
    parser.add_argument("--fuzz-examples", type=int, default=25, help="per operation and role")
    parser.add_argument("--fuzz-seed", type=int, help="replay a run's seed (printed in figures)")
    parser.add_argument("--load-seconds", type=int, default=60)
    parser.add_argument("--load-users", type=int, default=20)
    parser.add_argument("--outage-seconds", type=float, default=10.0)
    parser.add_argument("--crash-jobs", type=int, default=40)
    parser.add_argument("--restart-job-seconds", type=float, default=10.0)
    parser.add_argument("--alert-rounds", type=int, default=3, help="breakers opened and reset")
    parser.add_argument("--blackhole-seconds", type=float, default=20.0)
    parser.add_argument("--spool-kills", type=int, default=8, help="SIGKILLs during a replay")
    parser.add_argument("--spool-rows", type=int, default=3000, help="backlog replayed under kills")
    parser.add_argument("--spool-seed", type=int, help="replay a run's seed (printed in figures)")
    parser.add_argument("--workdir", type=Path, default=REPO / "var" / "drills")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "drills.json")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = set(chosen) - set(DRILLS)
    if unknown:
        parser.error(f"unknown drills: {', '.join(sorted(unknown))}; known: {', '.join(DRILLS)}")

    from controlplane.lib import embedded_db

    began = time.monotonic()
    shutil.rmtree(args.workdir, ignore_errors=True)
    pgdata = args.workdir / "pgdata"
    print(f"Starting an embedded PostgreSQL in {pgdata} ...", flush=True)
    database_url = embedded_db.ensure_running(pgdata)
    stack = Stack(database_url=database_url, workdir=args.workdir, web_workers=2, job_workers=4)
    upstream = None
    if "flapping" in chosen:
        from tests.reliability.drills._flapping_upstream import Upstream, provider_settings

        upstream = Upstream().start()
        stack.env.update(provider_settings(upstream))
    slow = None
    if "db_restart" in chosen:
        from tests.reliability.drills._slow_upstream import SlowUpstream

        slow = SlowUpstream(delay=args.restart_job_seconds).start()
        providers = json.loads(stack.env.get("PROVIDERS", "{}"))
        providers.update(slow.provider(timeout=args.restart_job_seconds + 20))
        stack.env["PROVIDERS"] = json.dumps(providers)

    def drill(name: str) -> DrillResult:
        reset = stack.reset_breakers()
        if reset:
            print(f"   (reset breakers left by earlier drills: {', '.join(reset)})", flush=True)
        module = importlib.import_module(f"tests.reliability.drills.{name}")
        if name == "fuzz":
            return module.run(stack, examples=args.fuzz_examples, seed=args.fuzz_seed)
        if name == "flapping":
            return module.run(stack, upstream)
        if name == "load":
            return module.run(stack, seconds=args.load_seconds, users=args.load_users)
        if name == "worker_crash":
            return module.run(stack, jobs=args.crash_jobs)
        if name == "alerting":
            return module.run(stack, rounds=args.alert_rounds)
        if name == "spool_faults":
            return module.run(
                stack, kills=args.spool_kills, rows=args.spool_rows, seed=args.spool_seed
            )
        if name == "db_outage":
            return module.run(
                stack,
                seconds=args.outage_seconds,
                stop=lambda: embedded_db.stop(pgdata),
                start=lambda: embedded_db.start(pgdata),
            )
        if name == "db_restart":
            return module.run(
                stack,
                slow,
                restart=lambda: embedded_db.restart(pgdata),
                job_seconds=args.restart_job_seconds,
            )
        if name == "db_blackhole":
            return module.run(stack, seconds=args.blackhole_seconds)
        return module.run(stack)

    results: list[DrillResult] = []
    print("Starting gunicorn (2 workers) and runworker ...", flush=True)
    try:
        stack.start()
        print(f"Service up at {stack.base_url}", flush=True)
        for name in DRILLS:
            if name in chosen:
                results.append(run_drill(name, lambda name=name: drill(name)))
    finally:
        stack.stop()
        for server in (upstream, slow):
            if server is not None:
                server.stop()
        # Stopped here, not left to pgserver's exit cleanup: that cleanup follows the
        # postmaster it started, and the restart drill replaced it.
        embedded_db.stop(pgdata)

    report: dict[str, Any] = {
        "passed": all(r.passed for r in results),
        "seconds": round(time.monotonic() - began, 1),
        "drills": [r.as_dict() for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(table(results))
    print(f"\nTotal {report['seconds']} s. JSON: {args.out}")
    print("ALL DRILLS PASSED" if report["passed"] else "SOME DRILLS FAILED")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
