"""Database blackhole: the network to PostgreSQL drops everything without closing anything.

A second web + worker pair reaches the drills' database through a TCP proxy on
127.0.0.1 (``tests/db_proxy.py``) that, for ``seconds``, stops forwarding in both
directions while keeping every connection open: no RST, no FIN, and the kernel
acknowledges what the service sends, so only the service's own deadlines notice.

Client threads keep calling health, a cached lookup, job creation and error
reports. Mid-blackhole the cached slug's UUID is changed behind the service's back
(directly on the database, whose NOTIFY cannot arrive): any later answer with the
old UUID that does not say so (``"stale": true``, with its age: the mapping the
process held when it lost the database) is a stale answer. Measured: answer times
after the first 10 s (p50/p99/max), health answer times, when the first 503
arrived (detection), seconds to full recovery after the network returns, stale
answers after detection, and jobs / support_ids lost.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from tests.db_proxy import DatabaseProxy
from tests.reliability.drills import DrillResult, envelope_of
from tests.reliability.drills.db_outage import (
    Answer,
    Ledger,
    audit,
    check_nothing_lost,
    client_loop,
    support_ids_handed_out,
)
from tests.reliability.drills.stack import Stack

SLUG = "blackhole-cached"
SETTLE_SECONDS = 10.0  # answers in the blackhole's first seconds may wait for detection
DETECTED_WITHIN = 7.0  # ping every 1 s, 3 s deadline, then a 2 s reconnect that fails
ENDPOINTS = ("health", "lookup", "POST /api/v1/jobs/", "POST /api/v1/errors/")


def _request(n: int) -> tuple[str, str, str, dict | None]:
    endpoint = ENDPOINTS[n % len(ENDPOINTS)]
    if endpoint == "health":
        return endpoint, "GET", "/api/v1/health/", None
    if endpoint == "lookup":
        return endpoint, "GET", f"/api/v1/lookups/{SLUG}/", None
    if endpoint == "POST /api/v1/jobs/":
        return endpoint, "POST", "/api/v1/jobs/", {"kind": "demo.sleep", "payload": {"seconds": 0}}
    report = {"code": "DRILL_BLACKHOLE", "message": "reported in the blackhole", "service": "drill"}
    return endpoint, "POST", "/api/v1/errors/", report


def _classify(answer: Answer) -> str:
    if 200 <= answer.status < 300:
        return "served"
    if answer.endpoint == "health" and answer.status == 503:
        return "proper_503"  # health's own report, not an envelope
    if answer.status == 503 and envelope_of(answer.body):
        return "proper_503"
    return "unexplained"


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _proxied_stack(stack: Stack, proxy: DatabaseProxy, user: str, database: str) -> Stack:
    side = Stack(
        database_url=proxy.url_for(user, database),
        workdir=stack.workdir / "blackhole",
        env={**stack.env, "ERROR_SPOOL_PATH": str(stack.workdir / "blackhole" / "spool.jsonl")},
    )
    side.workdir.mkdir(parents=True, exist_ok=True)
    (side.workdir / "prometheus").mkdir(exist_ok=True)
    side.tokens = dict(stack.tokens)
    side.start_web()
    side.start_worker()
    return side


def run(stack: Stack, *, seconds: float = 20.0, clients: int = 4) -> DrillResult:
    result = DrillResult("db_blackhole")
    # Every acknowledged job must succeed: none left by earlier drills may hold the workers.
    result.figures["leftover_jobs_cancelled"] = stack.cancel_leftover_jobs()
    parts = urlsplit(stack.database_url)
    socket_dir = parse_qs(parts.query)["host"][0]
    proxy = DatabaseProxy(socket_dir, parts.port or 5432).start()
    side = _proxied_stack(stack, proxy, parts.username or "postgres", parts.path.lstrip("/"))
    old_uuid, new_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    ledger = Ledger()
    halt = threading.Event()
    try:
        with side.api("ops") as ops:
            ops.post(
                "/api/v1/micro-services/",
                json={"slug": SLUG, "uuid": old_uuid, "name": "Blackhole"},
            )
        with side.api("client") as api:
            for _ in range(3):  # every web worker has it cached (and trusts its cache)
                api.get(f"/api/v1/lookups/{SLUG}/")
        threads = [
            threading.Thread(
                target=client_loop,
                args=(side, ledger, halt, 0.05),
                kwargs={"mix": _request, "timeout": 30},
                daemon=True,
            )
            for _ in range(clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(3)  # steady state
        began = time.monotonic()
        proxy.hang()
        time.sleep(1)
        with stack.connect() as conn:  # behind the service's back: its NOTIFY cannot arrive
            conn.execute(
                "UPDATE lookups_microservice SET uuid = %s WHERE slug = %s", [new_uuid, SLUG]
            )
        time.sleep(max(0.0, seconds - 1))
        proxy.resume()
        ended = time.monotonic()
        recovered_at = None
        while time.monotonic() < ended + 60:
            with ledger.lock:
                ok = {
                    a.endpoint
                    for a in ledger.answers
                    if a.started > ended and _classify(a) == "served"
                }
            if ok >= set(ENDPOINTS):
                recovered_at = time.monotonic()
                break
            time.sleep(0.1)
        time.sleep(3)
        halt.set()
        for thread in threads:
            thread.join(timeout=40)
        finished = list(ledger.answers)
        # Audited while the proxied processes run: what they spooled is theirs to replay.
        jobs = [
            str(a.body["id"])
            for a in finished
            if a.endpoint == "POST /api/v1/jobs/" and a.status == 201
        ]
        support_ids = support_ids_handed_out(finished)
        missing_jobs, unfinished, missing_ids = audit(stack, jobs, support_ids, settle_seconds=90)
        audited = time.monotonic()
    finally:
        halt.set()
        side.stop()
        proxy.stop()

    during = [a for a in finished if began <= a.started < ended]
    late = [a for a in during if a.started >= began + SETTLE_SECONDS]
    health = [a for a in during if a.endpoint == "health"]
    health_late = [a.took for a in late if a.endpoint == "health"]
    first_503 = min(
        (a.started + a.took for a in during if _classify(a) == "proper_503"), default=None
    )
    stale = [
        a
        for a in finished
        if a.endpoint == "lookup"
        and a.started >= began + DETECTED_WITHIN
        and a.status == 200
        and isinstance(a.body, dict)
        and a.body.get("uuid") == old_uuid
        and a.body.get("stale") is not True
    ]
    flagged = [
        a
        for a in finished
        if a.endpoint == "lookup" and isinstance(a.body, dict) and a.body.get("stale") is True
    ]
    unexplained = [a for a in finished if _classify(a) == "unexplained"]
    times = [a.took for a in late]
    result.figures.update(
        {
            "blackhole_seconds": round(ended - began, 1),
            "requests": len(finished),
            "requests_during_blackhole": len(during),
            "p50_after_10s": _percentile(times, 0.50),
            "p99_after_10s": _percentile(times, 0.99),
            "max_after_10s": round(max(times), 3) if times else None,
            "health_max_seconds": round(max(a.took for a in health), 3) if health else None,
            "health_max_after_10s": round(max(health_late), 3) if health_late else None,
            "first_503_after_seconds": round(first_503 - began, 2) if first_503 else None,
            "seconds_to_recovery": round(recovered_at - ended, 2) if recovered_at else None,
            "stale_answers_after_detection": len(stale),
            "flagged_stale_answers": len(flagged),
            "unexplained": len(unexplained),
            "jobs_acknowledged": len(jobs),
            "jobs_lost": len(missing_jobs),
            "jobs_not_succeeded": len(unfinished),
            "support_ids_handed_out": len(support_ids),
            "support_ids_lost": len(missing_ids),
            "seconds_until_all_findable": round(audited - ended, 1),
            "median_answer_seconds": round(statistics.median(a.took for a in finished), 3)
            if finished
            else None,
            "by_endpoint_and_status": dict(
                Counter(f"{a.endpoint} {a.status}" for a in during).most_common()
            ),
        }
    )
    result.check(bool(late), "no answer at all after the blackhole's first 10 s")
    p99 = result.figures["p99_after_10s"]
    result.check(
        p99 is not None and p99 <= 2.0, f"p99 answer time after the first 10 s is {p99} s (> 2 s)"
    )
    health_max = result.figures["health_max_seconds"]
    result.check(
        health_max is not None and health_max <= 1.0, f"health took up to {health_max} s (> 1 s)"
    )
    result.check(not stale, f"{len(stale)} stale lookup answers after detection")
    check_nothing_lost(result, unexplained, recovered_at, missing_jobs, unfinished, missing_ids)
    return result
