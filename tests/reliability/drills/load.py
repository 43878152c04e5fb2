"""Load drill: sustained mixed traffic from a second process (locust), then no loss.

1. Seeds what the traffic needs through the API: ``services`` micro-services created
   as ops, and the lookup cache warmed.
2. Runs locust headless (tests/reliability/drills/locustfile.py) for ``seconds`` with
   ``users`` simulated users: slug lookups (almost all cache hits, a few unknown slugs
   whose 404 envelope is expected), job create / Idempotency-Key replay / poll as a
   client, error reports as a client and reads by support_id as support, health and
   the breaker list; and "twins": one job creation (same Idempotency-Key) or one error
   report (same support_id) sent twice at once, where exactly one copy may answer 201.
3. Reports req/s, p50/p95/p99 overall and per endpoint, and the failures by kind.
4. Checks that nothing acknowledged was lost: every job answered 201 exists and the
   worker drains it to ``succeeded`` within ``drain_seconds``; every support_id the API
   handed out (error reports, and every error envelope shown) is stored.

Invariants: zero non-envelope errors (no error status without the envelope, no
transport error or timeout); zero unexpected envelopes as well: 20 users on two
gunicorn workers is ordinary load, with no rate limit configured, so an unexpected
4xx is a contract break and a 5xx (a 500, or a 503 from an exhausted database) is a
defect, not shedding. Latency is reported, not bounded: the drills share a small
machine with other work, so a latency bound would measure the neighbours.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.reliability.drills import DrillResult
from tests.reliability.drills.stack import REPO, Stack

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOCUST_FAILURES = 3  # our --exit-code-on-error: failures were recorded (we count them)
JOB_CREATE = "POST /api/v1/jobs/"  # the locustfile's request name for a job creation
KINDS = ("ENVELOPE", "NON_ENVELOPE", "UNHEALTHY", "INVARIANT")


def endpoint_names() -> tuple[str, ...]:
    """The request names the locustfile declares in ENDPOINTS, read without importing it
    (importing locust monkey-patches this process with gevent)."""
    tree = ast.parse(LOCUSTFILE.read_text())
    constants: dict[str, str] = {}
    names: tuple[str, ...] = ()
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            continue
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            constants[target.id] = node.value.value
        elif target.id == "ENDPOINTS" and isinstance(node.value, ast.Tuple):
            names = tuple(constants[e.id] for e in node.value.elts if isinstance(e, ast.Name))
    return names


def seed(stack: Stack, services: int) -> dict[str, str]:
    """Create (or find) ``services`` micro-services as ops; returns {slug: uuid}."""
    slugs: dict[str, str] = {}
    with stack.api("ops") as ops:
        for number in range(services):
            slug = f"load-svc-{number:03d}"
            created = ops.post(
                "/api/v1/micro-services/",
                json={"slug": slug, "name": f"Load drill service {number}", "active": True},
            )
            if created.status_code == 409:  # a rerun against the same database
                created = ops.get(f"/api/v1/micro-services/{slug}/")
            if created.status_code not in (200, 201):
                raise RuntimeError(f"seeding {slug}: {created.status_code} {created.text[:300]}")
            slugs[slug] = created.json()["uuid"]
        warmed = ops.post("/api/v1/lookups/warm/", json={"slugs": sorted(slugs)})
        if warmed.status_code != 200:
            raise RuntimeError(f"warming the lookup cache: {warmed.status_code} {warmed.text}")
    return slugs


def read_acks(path: Path) -> dict[str, list[list[str]]]:
    acks: dict[str, list[list[str]]] = {"job": [], "error": [], "shown": []}
    if path.exists():
        for line in path.read_text().splitlines():
            kind, *fields = line.split()
            acks.setdefault(kind, []).append(fields)
    return acks


def run_locust(
    stack: Stack, outdir: Path, slugs_file: Path, ack_file: Path, seconds: int, users: int
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # the locustfile imports tests.reliability.drills
        "LOAD_TOKEN_CLIENT": stack.tokens["client"],
        "LOAD_TOKEN_SUPPORT": stack.tokens["support"],
        "LOAD_SLUGS_FILE": str(slugs_file),
        "LOAD_ACK_FILE": str(ack_file),
        "LOAD_SUMMARY_FILE": str(outdir / "summary.json"),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(max(1, users // 2)),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "10",
        "--host",
        stack.base_url,
        "--csv",
        str(outdir / "locust"),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--logfile",
        str(outdir / "locust.log"),
        "--exit-code-on-error",
        str(LOCUST_FAILURES),
    ]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=seconds + 180
    )


def wait_for_jobs(
    stack: Stack, job_ids: list[str], bound: float
) -> tuple[dict[str, str], float | None]:
    """{job id: status} for the acknowledged jobs once all are terminal (or at ``bound``),
    and the seconds it took (None if some were still pending at the bound)."""
    started = time.monotonic()
    statuses: dict[str, str] = {}
    with stack.connect() as conn:
        while True:
            rows = conn.execute(
                "SELECT id::text, status FROM jobs_job WHERE id = ANY(%s::uuid[])", [job_ids]
            ).fetchall()
            statuses = dict(rows)
            pending = [s for s in statuses.values() if s in ("queued", "running")]
            elapsed = time.monotonic() - started
            if not pending:
                return statuses, round(elapsed, 1)
            if elapsed > bound:
                return statuses, None
            time.sleep(0.5)


def run(
    stack: Stack,
    seconds: int = 60,
    users: int = 20,
    services: int = 50,
    drain_seconds: float = 60.0,
) -> DrillResult:
    result = DrillResult("load")
    outdir = stack.workdir / "load"
    outdir.mkdir(parents=True, exist_ok=True)
    slugs_file, ack_file = outdir / "slugs.json", outdir / "acknowledged.txt"
    ack_file.unlink(missing_ok=True)
    slugs_file.write_text(json.dumps(seed(stack, services)))
    log_starts = {name: len(stack.log(name)) for name in ("web", "worker")}

    try:
        locust = run_locust(stack, outdir, slugs_file, ack_file, seconds, users)
    except subprocess.TimeoutExpired as stuck:  # run() killed it
        result.check(False, f"locust did not finish within {stuck.timeout:.0f} s")
        return result
    ended = time.monotonic()
    (outdir / "locust.stdout").write_text(locust.stdout + locust.stderr)
    summary_file = outdir / "summary.json"
    if not summary_file.exists():
        tail = (locust.stderr or locust.stdout)[-2000:]
        result.check(False, f"locust wrote no summary (exit code {locust.returncode}):\n{tail}")
        return result

    summary = json.loads(summary_file.read_text())
    total, per_endpoint = summary["total"], summary["endpoints"]
    exceptions = {e["message"]: e["count"] for e in summary["exceptions"]}
    by_kind = Counter({kind: 0 for kind in KINDS})
    kinds: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
    for failure in sorted(summary["failures"], key=lambda f: -f["count"]):
        kind = failure["message"].split(" ", 1)[0]
        kind = kind if kind in KINDS else "NON_ENVELOPE"  # not one of ours: count it as worst
        by_kind[kind] += failure["count"]
        kinds[kind][f"{failure['name']}: {failure['message']}"] = failure["count"]
    requests = total["requests"]
    failed = sum(by_kind.values())

    acks = read_acks(ack_file)
    job_ids = sorted({fields[0] for fields in acks["job"]})
    created_ids = {fields[0] for fields in acks["job"] if fields[1:] == ["create"]}
    reported = sorted({fields[0] for fields in acks["error"]})
    shown = sorted({fields[0] for fields in acks["shown"]})
    shown_codes = Counter(f"{fields[1]} {fields[2]}" for fields in acks["shown"])
    statuses, drained_in = wait_for_jobs(stack, job_ids, drain_seconds)
    drained_at = time.monotonic() - ended
    stored = stack.stored_support_ids(sorted(set(reported) | set(shown)))
    missing_reports = [s for s in reported if s not in stored]
    missing_shown = [s for s in shown if s not in stored]
    missing_jobs = [j for j in job_ids if j not in statuses]
    job_outcomes = Counter(statuses.values())
    web_log = stack.log("web")[log_starts["web"] :]
    worker_log = stack.log("worker")[log_starts["worker"] :]

    result.figures = {
        "users": users,
        "seconds": seconds,
        "requests": requests,
        "req_per_s": total.get("req_per_s"),
        "error_rate": round(failed / requests, 5) if requests else None,
        "envelope_errors": by_kind["ENVELOPE"],
        "non_envelope_errors": by_kind["NON_ENVELOPE"],
        "unhealthy_answers": by_kind["UNHEALTHY"],
        "invariant_violations": by_kind["INVARIANT"],
        "p50_ms": total.get("p50_ms"),
        "p95_ms": total.get("p95_ms"),
        "p99_ms": total.get("p99_ms"),
        "max_ms": total.get("max_ms"),
        "expected_not_found": shown_codes["404 MICRO_SERVICE_NOT_FOUND"],
        "jobs_acknowledged": len(job_ids),
        "jobs_succeeded": job_outcomes["succeeded"],
        "jobs_drain_s": drained_in,
        "errors_acknowledged": len(reported),
        "support_ids_shown": len(shown),
        "support_ids_missing": len(missing_reports) + len(missing_shown),
        "locust_exit_code": locust.returncode,
        "per_endpoint": per_endpoint,
        "failures": {kind: found for kind, found in kinds.items() if found},
        "shown_codes": dict(shown_codes.most_common()),
        "job_statuses": dict(job_outcomes),
        "web_log_tracebacks": web_log.count("Traceback (most recent call last)"),
        "worker_log_tracebacks": worker_log.count("Traceback (most recent call last)"),
    }

    expected_exit = LOCUST_FAILURES if failed or exceptions else 0
    result.check(
        locust.returncode == expected_exit,
        f"locust exited {locust.returncode}, expected {expected_exit}: "
        f"{(locust.stderr or locust.stdout)[-1000:]}",
    )
    result.check(not exceptions, f"locust tasks raised: {exceptions}")
    result.check(
        by_kind["NON_ENVELOPE"] == 0,
        f"{by_kind['NON_ENVELOPE']} non-envelope errors: {kinds['NON_ENVELOPE']}",
    )
    for kind in ("ENVELOPE", "UNHEALTHY", "INVARIANT"):
        result.check(not by_kind[kind], f"{by_kind[kind]} {kind} failures: {kinds[kind]}")
    silent = [
        name for name in endpoint_names() if per_endpoint.get(name, {}).get("requests", 0) == 0
    ]
    result.check(not silent, f"endpoints without traffic: {silent}")
    result.check(
        "WORKER TIMEOUT" not in web_log, "a gunicorn worker timed out (killed mid-request)"
    )
    result.check(bool(job_ids), "no job was acknowledged: the job traffic did not run")
    created = per_endpoint.get(JOB_CREATE, {"requests": 0, "failures": 0})
    result.check(
        len(created_ids) == created["requests"] - created["failures"],
        f"harness: {len(created_ids)} job ids recorded for {created} job creations",
    )
    result.check(
        not missing_jobs, f"{len(missing_jobs)} acknowledged jobs lost: {missing_jobs[:5]}"
    )
    result.check(
        drained_in is not None,
        f"jobs not drained {drained_at:.0f} s after the load: {dict(job_outcomes)}",
    )
    result.check(
        job_outcomes["succeeded"] == len(job_ids),
        f"acknowledged jobs that did not succeed: {dict(job_outcomes)}",
    )
    result.check(bool(reported), "no error report was acknowledged: the traffic did not run")
    result.check(
        not missing_reports,
        f"{len(missing_reports)} reported support_ids not stored: {missing_reports[:5]}",
    )
    result.check(
        not missing_shown,
        f"{len(missing_shown)} support_ids shown in envelopes not stored: {missing_shown[:5]}",
    )
    return result
