"""Database outage: stop PostgreSQL for a while under steady load, start it, audit.

Client threads keep creating jobs, resolving slugs (held ones, one at a time and in a
batch, and unknown ones) and reporting errors. Every answer is classified:

- served: 2xx (a lookup answered stale or with the slug-only fallback counts here);
- proper 503: the error envelope with a support_id (the record is spooled);
- unexplained: anything else, including timeouts and connection errors (must be 0).

Before the stop every process is warmed with the held slugs, and one of them is changed
(through the API) just before the stop. From the stop on, every lookup answer is checked
against the mappings in the database at the stop: a UUID that differs is a wrong UUID
(must be 0; the changed mapping with its old UUID counts here), and the outage must
produce stale answers (flagged ``stale``) for the held slugs.

After the restart: every job acknowledged with 201 must exist and succeed
(the worker recovered too), and every support_id handed out — in a 201 to an
error report or in a 503 envelope — must be in the error table once the spool
is replayed (must be 0 missing). Recovery time is from the restart to the
moment every kind of request succeeds again.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from tests.reliability.drills import DrillResult, envelope_of
from tests.reliability.drills.stack import Stack

CACHED_SLUG = "outage-cached"
CHANGED_SLUG = "outage-changed"  # changed just before the stop: never served with its old UUID
HELD_SLUGS = (CACHED_SLUG, CHANGED_SLUG, *(f"outage-held-{n}" for n in range(6)))
KINDS = 5  # request_mix's kinds of request


@dataclass
class Answer:
    at: float  # when the answer (or the transport error) arrived
    endpoint: str
    status: int  # 0: no HTTP answer at all
    body: Any = None
    problem: str = ""
    took: float = 0.0  # seconds from sending the request

    @property
    def started(self) -> float:
        return self.at - self.took


@dataclass
class Ledger:
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


def request_mix(n: int) -> tuple[str, str, str, dict | None]:
    """(endpoint label, method, path, json) for the n-th request of a client thread."""
    kind = n % KINDS
    if kind == 0:
        body = {"kind": "demo.sleep", "payload": {"seconds": 0}}
        return "POST /api/v1/jobs/", "POST", "/api/v1/jobs/", body
    if kind == 1:
        slug = HELD_SLUGS[(n // KINDS) % len(HELD_SLUGS)]
        return "GET lookup (cached)", "GET", f"/api/v1/lookups/{slug}/", None
    if kind == 2:
        slug = f"outage-miss-{uuid.uuid4().hex[:8]}"
        return "GET lookup (miss)", "GET", f"/api/v1/lookups/{slug}/", None
    if kind == 3:
        body = {"slugs": [*HELD_SLUGS, f"outage-miss-{uuid.uuid4().hex[:8]}"]}
        return "POST lookup batch", "POST", "/api/v1/lookups/batch/", body
    report = {"code": "DRILL_OUTAGE", "message": "reported during the drill", "service": "drill"}
    return "POST /api/v1/errors/", "POST", "/api/v1/errors/", report


def client_loop(
    stack: Stack,
    ledger: Ledger,
    stop: threading.Event,
    pause: float,
    *,
    mix: Callable[[int], tuple[str, str, str, dict | None]] = request_mix,
    timeout: float = 20,
) -> None:
    """One client thread: the n-th request is ``mix(n)``; every answer goes in the ledger."""
    n = 0
    with stack.api("client", timeout=timeout) as api:
        while not stop.is_set():
            endpoint, method, path, body = mix(n)
            n += 1
            started = time.monotonic()
            try:
                response = api.request(method, path, json=body)
                try:
                    parsed = response.json()
                except ValueError:
                    parsed = response.text[:300]
                answer = Answer(time.monotonic(), endpoint, response.status_code, parsed)
            except httpx.HTTPError as exc:
                answer = Answer(time.monotonic(), endpoint, 0, problem=repr(exc))
            answer.took = answer.at - started
            ledger.add(answer)
            stop.wait(pause)


def classify(answer: Answer) -> str:
    if 200 <= answer.status < 300:
        return "served"
    if answer.endpoint == "GET lookup (miss)" and answer.status == 404:
        # An unknown slug is a proper 404 envelope whenever the database is up.
        return "served" if envelope_of(answer.body) else "unexplained"
    if answer.status == 503 and envelope_of(answer.body):
        return "proper_503"
    return "unexplained"


def register_and_warm(stack: Stack) -> tuple[dict[str, str], int]:
    """Register the held slugs and warm every process with them; (slug -> uuid, how many
    processes warmed all of them)."""
    expected = {}
    with stack.api("ops") as ops:
        for slug in HELD_SLUGS:
            ops.post(
                "/api/v1/micro-services/",
                json={"slug": slug, "uuid": str(uuid.uuid4()), "name": "Outage drill"},
            )  # (or it exists from an earlier run: its UUID is read back below)
            expected[slug] = ops.get(f"/api/v1/micro-services/{slug}/").json()["uuid"]
        reports = ops.post("/api/v1/lookups/warm/", json={"slugs": list(HELD_SLUGS)}).json()
    warmed = sum(1 for report in reports["reports"] if report["warmed"] == len(HELD_SLUGS))
    return expected, warmed


def lookup_results(answer: Answer) -> list[dict[str, Any]]:
    """The lookup answers in ``answer``: a single lookup's body, or a batch's items."""
    if not 200 <= answer.status < 300 or not isinstance(answer.body, dict):
        return []
    if answer.endpoint == "POST lookup batch":
        return [item for item in answer.body.get("results", []) if isinstance(item, dict)]
    return [answer.body] if answer.endpoint.startswith("GET lookup") else []


def audit_lookups(answers: list[Answer], expected: dict[str, str], old_uuid: str) -> dict[str, Any]:
    """Stale and fallback answers, and wrong UUIDs: a UUID other than the slug's in the
    database at the stop (``expected``; no UUID at all for a slug not registered)."""
    counts: dict[str, Any] = {"stale": 0, "fallback": 0, "wrong": 0, "changed_old": 0}
    ages = [0.0]
    for answer in answers:
        for item in lookup_results(answer):
            value, slug = item.get("uuid"), item.get("slug")
            if item.get("stale"):
                counts["stale"] += 1
                ages.append(float(item.get("stale_age_seconds") or 0.0))
            counts["fallback"] += bool(item.get("fallback_used"))
            counts["wrong"] += value is not None and value != expected.get(slug)
            counts["changed_old"] += slug == CHANGED_SLUG and value == old_uuid
    counts["max_stale_age"] = round(max(ages), 2)
    return counts


def seconds_until_in_table(
    stack: Stack, support_ids: set[str], since: float, box: dict[str, float | None]
) -> None:
    """Poll (every 0.1 s, up to 90 s) until every one of ``support_ids`` is in the error
    table; ``box["seconds"]``: how long after ``since`` that was (None: never)."""
    box["seconds"] = None
    wanted = sorted(support_ids)
    while time.monotonic() < since + 90:
        try:
            found = len(stack.stored_support_ids(wanted))
        except psycopg.Error:  # the server is still starting
            found = -1
        if found == len(wanted):
            box["seconds"] = time.monotonic() - since
            return
        time.sleep(0.1)


def support_ids_handed_out(answers: list[Answer]) -> set[str]:
    ids = set()
    for answer in answers:
        envelope = envelope_of(answer.body)
        if envelope:
            ids.add(str(envelope["support_id"]))
        elif answer.endpoint == "POST /api/v1/errors/" and answer.status in (200, 201):
            ids.add(str(answer.body["support_id"]))
    return ids


def audit(
    stack: Stack, jobs: list[str], support_ids: set[str], settle_seconds: float
) -> tuple[list[str], list[str], list[str]]:
    """Wait (bounded) until every acknowledged job exists and succeeded and every support_id
    handed out is in the error table; what is still missing, unfinished, unfindable."""
    deadline = time.monotonic() + settle_seconds
    missing_jobs, unfinished, missing_ids = list(jobs), list(jobs), sorted(support_ids)
    while time.monotonic() < deadline:
        with stack.connect() as conn:
            rows = dict(
                conn.execute(
                    "SELECT id::text, status FROM jobs_job WHERE id = ANY(%s::uuid[])", [jobs]
                ).fetchall()
            )
        found = stack.stored_support_ids(sorted(support_ids))
        missing_jobs = [j for j in jobs if j not in rows]
        unfinished = [j for j in jobs if rows.get(j) != "succeeded"]
        missing_ids = sorted(support_ids - found)
        if not missing_jobs and not unfinished and not missing_ids:
            break
        time.sleep(1)
    return missing_jobs, unfinished, missing_ids


def other_jobs_running(stack: Stack, jobs: list[str]) -> list[str]:
    """The running jobs that are not ``jobs``: what may hold the job workers when the
    drill's own jobs do not finish."""
    with stack.connect() as conn:
        rows = conn.execute(
            "SELECT id::text, kind, payload::text, idempotency_key FROM jobs_job"
            " WHERE status = 'running' AND NOT id = ANY(%s::uuid[])",
            [jobs],
        ).fetchall()
    return [
        f"{job_id} {kind} {payload} {key or ''}".rstrip() for job_id, kind, payload, key in rows
    ]


def run(
    stack: Stack,
    seconds: float = 10.0,
    *,
    stop: Callable[[], Any],
    start: Callable[[], Any],
    clients: int = 4,
    pause: float = 0.05,
    settle_seconds: float = 90.0,
) -> DrillResult:
    result = DrillResult("db_outage")
    # Every acknowledged job must succeed after the restart: a job that is not the drill's
    # (load_demo's 300 s demo-long, a fuzzer's) would hold a job worker throughout, and with
    # one worker every drill job would wait behind it until the audit gave up.
    result.figures["leftover_jobs_cancelled"] = stack.cancel_leftover_jobs()
    expected, warmed = register_and_warm(stack)
    ledger = Ledger()
    halt = threading.Event()
    threads = [
        threading.Thread(target=client_loop, args=(stack, ledger, halt, pause), daemon=True)
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(3)  # steady state before the outage
    # Another process changes a held mapping, and the database stops at once.
    old_uuid, expected[CHANGED_SLUG] = expected[CHANGED_SLUG], str(uuid.uuid4())
    with stack.api("ops") as ops:
        changed = ops.patch(
            f"/api/v1/micro-services/{CHANGED_SLUG}/", json={"uuid": expected[CHANGED_SLUG]}
        )
    result.check(changed.status_code == 200, f"changing {CHANGED_SLUG}: {changed.text[:200]}")
    stopping = time.monotonic()
    stop()
    stopped = time.monotonic()
    time.sleep(seconds)
    start()
    restarted = time.monotonic()
    # The records spooled during the outage: how soon are they in the table?
    with ledger.lock:
        outage_ids = support_ids_handed_out([a for a in ledger.answers if a.at >= stopping])
    spooled_box: dict[str, float | None] = {}
    watcher = threading.Thread(
        target=seconds_until_in_table,
        args=(stack, outage_ids, restarted, spooled_box),
        daemon=True,
    )
    watcher.start()
    # Load continues until every kind of request has succeeded again (bounded).
    endpoints = {request_mix(n)[0] for n in range(KINDS)}
    recovered_at = None
    while time.monotonic() < restarted + 60:
        with ledger.lock:
            ok = {
                a.endpoint for a in ledger.answers if a.at > restarted and classify(a) == "served"
            }
        if ok >= endpoints:
            recovered_at = time.monotonic()
            break
        time.sleep(0.1)
    time.sleep(5)  # and a little more steady load after recovery
    halt.set()
    for thread in threads:
        thread.join(timeout=30)

    watcher.join(timeout=95)
    answers = list(ledger.answers)
    kinds = Counter(classify(a) for a in answers)
    during = [a for a in answers if stopping <= a.at <= restarted]
    unexplained = [a for a in answers if classify(a) == "unexplained"]
    after_restart = [a for a in answers if a.at > restarted and classify(a) != "served"]
    jobs = [
        str(a.body["id"]) for a in answers if a.endpoint == "POST /api/v1/jobs/" and a.status == 201
    ]
    support_ids = support_ids_handed_out(answers)
    # From the stop on, against the mappings in the database at the stop.
    lookups = audit_lookups([a for a in answers if a.started >= stopped], expected, old_uuid)
    stale = audit_lookups([a for a in during if a.started >= stopped], expected, old_uuid)

    # Audit once everything settled: jobs run by the recovered worker, spool replayed.
    missing_jobs, unfinished, missing_ids = audit(stack, jobs, support_ids, settle_seconds)
    audited = time.monotonic()

    result.figures.update(
        {
            "outage_seconds": round(restarted - stopped, 1),
            "requests": len(answers),
            "requests_during_outage": len(during),
            "served": kinds["served"],
            "proper_503": kinds["proper_503"],
            "unexplained": kinds["unexplained"],
            "served_during_outage": sum(1 for a in during if classify(a) == "served"),
            "seconds_to_full_recovery": (
                round(recovered_at - restarted, 2) if recovered_at else None
            ),
            "failures_after_restart": len(after_restart),
            "jobs_acknowledged": len(jobs),
            "jobs_missing": len(missing_jobs),
            "jobs_not_succeeded": len(unfinished),
            "support_ids_handed_out": len(support_ids),
            "support_ids_missing": len(missing_ids),
            "seconds_until_all_findable": round(audited - restarted, 1),
            "outage_support_ids": len(outage_ids),
            "seconds_until_outage_ids_in_table": (
                round(spooled_box["seconds"], 2) if spooled_box.get("seconds") is not None else None
            ),
            "held_slugs": len(HELD_SLUGS),
            "processes_warmed": warmed,
            "stale_answers_during_outage": stale["stale"],
            "fallback_answers_during_outage": stale["fallback"],
            "max_stale_age_seconds": stale["max_stale_age"],
            "wrong_uuids": lookups["wrong"],
            "changed_mapping_served_old_uuid": lookups["changed_old"],
            "by_endpoint_and_status": dict(
                Counter(f"{a.endpoint} {a.status}" for a in answers).most_common()
            ),
        }
    )
    if unfinished:  # what held the job workers meanwhile
        result.figures["other_jobs_running_at_audit"] = other_jobs_running(stack, jobs)
    result.check(kinds["proper_503"] > 0, "the outage produced no 503 at all: did it happen?")
    result.check(stale["stale"] > 0, "no stale answer was served during the outage")
    result.check(
        lookups["wrong"] == 0,
        f"{lookups['wrong']} lookup answers with a UUID other than the database's at the stop",
    )
    result.check(
        lookups["changed_old"] == 0,
        f"{CHANGED_SLUG}, changed just before the stop, was served {lookups['changed_old']}"
        " times with its old UUID",
    )
    check_nothing_lost(result, unexplained, recovered_at, missing_jobs, unfinished, missing_ids)
    return result


def check_nothing_lost(
    result: DrillResult,
    unexplained: list[Any],
    recovered_at: float | None,
    missing_jobs: list[str],
    unfinished: list[str],
    missing_ids: list[str],
) -> None:
    """The invariants every database fault drill ends with: every answer explained, every
    kind of request served again, nothing acknowledged lost."""
    result.check(
        not unexplained,
        f"{len(unexplained)} unexplained answers, e.g. "
        + "; ".join(
            f"{a.endpoint} {a.status} {a.problem or str(a.body)[:200]}" for a in unexplained[:5]
        ),
    )
    result.check(recovered_at is not None, "not every kind of request succeeded within 60 s")
    result.check(not missing_jobs, f"{len(missing_jobs)} acknowledged jobs are gone")
    result.check(not unfinished, f"{len(unfinished)} acknowledged jobs never succeeded")
    result.check(not missing_ids, f"{len(missing_ids)} support_ids never became findable")
