"""Locust traffic for the load drill (tests/reliability/drills/load.py starts it headless).

Mixed, weighted traffic against the REST API, each request named by its endpoint
template. Every response is classified (``catch_response=True``); a failure message
starts with one of these words so load.py can count each kind from locust's
failures CSV:

- ``ENVELOPE``: an unexpected status, answered with a proper error envelope.
- ``NON_ENVELOPE``: anything else that is not a valid answer: an error status
  without the envelope (or a malformed one), a redirect, a transport error or
  timeout.
- ``UNHEALTHY``: /api/v1/health/ answered 503 with its documented report.
- ``INVARIANT``: a well-formed answer with the wrong content or success status (a
  replayed Idempotency-Key returning another job, a lookup returning another UUID, a
  200 where a creation's 201 was due, ...).

Expected outcomes (an unknown slug's 404 envelope, a replay's 200) are successes.
Acknowledged ids are appended to ``LOAD_ACK_FILE``, one ``kind id [detail]`` per line,
so load.py can check afterwards that none was lost:

- ``job <id> <create|twins>``: a job the API created (201), by which task.
- ``error <support_id>``: an error report the API stored (201), or acknowledged (a twin).
- ``shown <support_id> <status> <code>``: a support id shown in an error envelope.

At exit, the final stats go to ``LOAD_SUMMARY_FILE`` as JSON (``_locust_summary``).

Configuration (environment): LOAD_TOKEN_CLIENT, LOAD_TOKEN_SUPPORT, LOAD_SLUGS_FILE
(JSON ``{slug: uuid}`` of seeded micro-services), LOAD_ACK_FILE, LOAD_SUMMARY_FILE,
and optionally
LOAD_WAIT_MIN / LOAD_WAIT_MAX (seconds between a user's requests) and
LOAD_REQUEST_TIMEOUT (seconds).
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import deque
from typing import Any

import gevent
from locust import HttpUser, between, task

from tests.reliability.drills import (
    _locust_summary,  # noqa: F401 -- writes the exit summary
    envelope_of,
)

TIMEOUT = float(os.environ.get("LOAD_REQUEST_TIMEOUT", "30"))
JOB_STATUSES = {"queued", "running", "succeeded", "failed", "cancelled", "timed_out"}

LOOKUP = "GET /api/v1/lookups/{slug}/"
LOOKUP_UNKNOWN = "GET /api/v1/lookups/{slug}/ (unknown slug)"
JOB_CREATE = "POST /api/v1/jobs/"
JOB_REPLAY = "POST /api/v1/jobs/ (Idempotency-Key replay)"
JOB_POLL = "GET /api/v1/jobs/{id}/"
ERROR_REPORT = "POST /api/v1/errors/"
ERROR_GET = "GET /api/v1/errors/{support_id}/"
# Two copies of one request at once (a client retrying while the first is in flight):
# exactly one may create, the other is acknowledged with the same id.
JOB_TWINS = "POST /api/v1/jobs/ (concurrent twins)"
ERROR_TWINS = "POST /api/v1/errors/ (concurrent twins)"
HEALTH = "GET /api/v1/health/"
BREAKERS = "GET /api/v1/breakers/"
ENDPOINTS = (
    LOOKUP,
    LOOKUP_UNKNOWN,
    JOB_CREATE,
    JOB_REPLAY,
    JOB_POLL,
    ERROR_REPORT,
    ERROR_GET,
    HEALTH,
    BREAKERS,
    JOB_TWINS,
    ERROR_TWINS,
)


def _slugs() -> dict[str, str]:
    path = os.environ.get("LOAD_SLUGS_FILE")
    if not path:
        return {}
    with open(path) as handle:
        return json.load(handle)


SLUGS = _slugs()
SLUG_NAMES = sorted(SLUGS)
_ack_path = os.environ.get("LOAD_ACK_FILE")
# One process, cooperative greenlets: a line written and flushed at once is never torn.
_ack = open(_ack_path, "a", buffering=1) if _ack_path else None  # noqa: SIM115 -- process-long
# Support ids reported by any user, for support's reads (shared within this process).
REPORTED: deque[str] = deque(maxlen=500)


def ack(*fields: Any) -> None:
    if _ack is not None:
        _ack.write(" ".join(str(f) for f in fields) + "\n")


def envelope_in(response: Any) -> dict[str, Any] | None:
    """The error envelope of ``response`` (see drills.envelope_of), or None."""
    try:
        return envelope_of(response.json())
    except ValueError:
        return None


def settle(response: Any, expected: dict[int, str | None]) -> Any:
    """Mark ``response`` a success or a classified failure; returns the JSON body of an
    expected answer (the envelope for an expected error), else None.

    ``expected`` maps each expected status to the error code it must carry (None: any
    code, or a success status)."""
    status = response.status_code
    if not status:  # transport error: refused, reset, timeout
        response.failure(f"NON_ENVELOPE transport {type(response.error).__name__}")
        return None
    if status >= 400:
        error = envelope_in(response)
        if error is None:
            response.failure(f"NON_ENVELOPE {status} without a valid error envelope")
            return None
        ack("shown", error["support_id"], status, error["code"])
        wanted = expected.get(status, "-")
        if wanted is None or wanted == error["code"]:
            response.success()
            return error
        response.failure(f"ENVELOPE {status} {error['code']}")
        return None
    if status not in expected:  # a redirect is not an answer; a 2xx may be the wrong one
        kind = "INVARIANT" if 200 <= status < 300 else "NON_ENVELOPE"
        response.failure(f"{kind} {status} instead of {'/'.join(map(str, expected))}")
        return None
    try:
        body = response.json()
    except ValueError:
        response.failure(f"NON_ENVELOPE {status} body is not JSON")
        return None
    response.success()
    return body


class ApiUser(HttpUser):
    """A mix of REST clients, support staff and monitors, weighted like production."""

    wait_time = between(
        float(os.environ.get("LOAD_WAIT_MIN", "0.05")),
        float(os.environ.get("LOAD_WAIT_MAX", "0.3")),
    )

    def on_start(self) -> None:
        self.as_client = {"Authorization": f"Token {os.environ['LOAD_TOKEN_CLIENT']}"}
        self.as_support = {"Authorization": f"Token {os.environ['LOAD_TOKEN_SUPPORT']}"}
        self.jobs: deque[tuple[str, str, dict[str, Any]]] = deque(maxlen=50)  # (id, key, body)
        if not SLUGS:
            raise RuntimeError("LOAD_SLUGS_FILE names no seeded micro-services")

    def request(self, method: str, path: str, name: str, **kwargs: Any) -> Any:
        return self.client.request(
            method,
            path,
            name=name,
            catch_response=True,
            allow_redirects=False,
            timeout=TIMEOUT,
            **kwargs,
        )

    # --- lookups: the hot path, almost all cache hits ---------------------------------
    @task(40)
    def lookup(self) -> None:
        slug = random.choice(SLUG_NAMES)
        with self.request(
            "GET", f"/api/v1/lookups/{slug}/", LOOKUP, headers=self.as_client
        ) as response:
            body = settle(response, {200: None})
            if body is None:
                return
            if body.get("fallback_used"):
                response.failure("INVARIANT lookup fell back (lookups breaker open)")
            elif body.get("uuid") != SLUGS[slug]:
                response.failure("INVARIANT lookup returned another UUID")

    @task(4)
    def lookup_unknown(self) -> None:
        slug = f"load-unknown-{uuid.uuid4().hex[:12]}"
        with self.request(
            "GET", f"/api/v1/lookups/{slug}/", LOOKUP_UNKNOWN, headers=self.as_client
        ) as response:
            settle(response, {404: "MICRO_SERVICE_NOT_FOUND"})

    # --- jobs ----------------------------------------------------------------------
    @task(8)
    def create_job(self) -> None:
        key = f"load-{uuid.uuid4()}"
        body = {
            "kind": "demo.sleep",
            "payload": {"seconds": 0},
            "micro_id": random.choice(SLUG_NAMES),
        }
        with self.request(
            "POST",
            "/api/v1/jobs/",
            JOB_CREATE,
            json=body,
            headers={**self.as_client, "Idempotency-Key": key},
        ) as response:
            job = settle(response, {201: None})
            if job is None:
                return
            if job.get("status") not in JOB_STATUSES or not job.get("id"):
                response.failure("INVARIANT created job without id or with an unknown status")
                return
            ack("job", job["id"], "create")
            self.jobs.append((job["id"], key, body))

    @task(2)
    def replay_job(self) -> None:
        if not self.jobs:
            return self.create_job()
        job_id, key, body = random.choice(self.jobs)
        with self.request(
            "POST",
            "/api/v1/jobs/",
            JOB_REPLAY,
            json=body,
            headers={**self.as_client, "Idempotency-Key": key},
        ) as response:
            job = settle(response, {200: None})
            if job is not None and job.get("id") != job_id:
                response.failure("INVARIANT Idempotency-Key replay returned another job")
        return None

    @task(12)
    def poll_job(self) -> None:
        if not self.jobs:
            return self.create_job()
        job_id = random.choice(self.jobs)[0]
        with self.request(
            "GET", f"/api/v1/jobs/{job_id}/", JOB_POLL, headers=self.as_client
        ) as response:
            job = settle(response, {200: None})
            if job is not None and (
                job.get("id") != job_id or job.get("status") not in JOB_STATUSES
            ):
                response.failure("INVARIANT polled job has another id or an unknown status")
        return None

    def twins(self, name: str, path: str, body: dict[str, Any], key: str | None) -> str | None:
        """Send two copies of one creation at once; returns the id both answered with, or
        None. The copy answering second marks itself failed unless exactly one got 201 and
        both carry the same id."""
        headers = {**self.as_client, **({"Idempotency-Key": key} if key else {})}
        id_field = "support_id" if key is None else "id"
        answers: list[tuple[int, Any]] = []

        def one() -> None:
            with self.request("POST", path, name, json=body, headers=headers) as response:
                answer = settle(response, {200: None, 201: None})
                if answer is None:
                    return
                answers.append((response.status_code, answer.get(id_field)))
                if len(answers) < 2:
                    return
                statuses = sorted(status for status, _ in answers)
                if statuses != [200, 201]:
                    response.failure(f"INVARIANT twins answered {statuses[0]} and {statuses[1]}")
                elif answers[0][1] != answers[1][1] or not answers[0][1]:
                    response.failure("INVARIANT twins answered with different ids")

        gevent.joinall([gevent.spawn(one), gevent.spawn(one)])
        ids = {found for _, found in answers if found}
        return ids.pop() if len(ids) == 1 else None

    @task(1)
    def create_job_twins(self) -> None:
        body = {"kind": "demo.sleep", "payload": {"seconds": 0}}
        job_id = self.twins(JOB_TWINS, "/api/v1/jobs/", body, key=f"load-twin-{uuid.uuid4()}")
        if job_id:
            ack("job", job_id, "twins")

    # --- error records -----------------------------------------------------------------
    @task(1)
    def report_error_twins(self) -> None:
        support_id = str(uuid.uuid4())
        body = {
            "code": "LOAD_DRILL_TWIN_REPORT",
            "message": "the same report sent twice at once by the load drill",
            "service": "load-drill",
            "support_id": support_id,
        }
        if self.twins(ERROR_TWINS, "/api/v1/errors/", body, key=None) == support_id:
            ack("error", support_id)

    @task(6)
    def report_error(self) -> None:
        body = {
            "code": "LOAD_DRILL_REPORTED",
            "message": "synthetic error reported by the load drill",
            "user_message": "The load drill reported this error.",
            "service": "load-drill",
            "http_status": 502,
            "context": {"drill": "load", "sequence": random.randrange(1_000_000)},
        }
        with self.request(
            "POST", "/api/v1/errors/", ERROR_REPORT, json=body, headers=self.as_client
        ) as response:
            report = settle(response, {201: None})
            if report is None:
                return
            support_id = report.get("support_id")
            if not support_id or not str(report.get("message", "")).endswith(
                f"(Reference: {support_id})"
            ):
                response.failure("INVARIANT error report without a referenced support_id")
                return
            ack("error", support_id)
            REPORTED.append(support_id)

    @task(5)
    def read_error(self) -> None:
        if not REPORTED:
            return self.report_error()
        support_id = random.choice(REPORTED)
        with self.request(
            "GET", f"/api/v1/errors/{support_id}/", ERROR_GET, headers=self.as_support
        ) as response:
            found = settle(response, {200: None})
            record = (found or {}).get("record") or {}
            if found is not None and str(record.get("support_id")) != support_id:
                response.failure("INVARIANT error read returned another record")
        return None

    # --- monitors and dashboards -------------------------------------------------------
    @task(4)
    def health(self) -> None:
        with self.request("GET", "/api/v1/health/", HEALTH) as response:
            if response.status_code == 503:
                try:
                    report = response.json()
                except ValueError:
                    report = None
                if isinstance(report, dict) and report.get("status") == "unhealthy":
                    failing = sorted(
                        name
                        for name, check in (report.get("checks") or {}).items()
                        if isinstance(check, dict) and check.get("status") == "unhealthy"
                    )
                    response.failure(f"UNHEALTHY 503 {','.join(failing)}")
                    return
            report = settle(response, {200: None})
            if report is not None and report.get("status") not in ("healthy", "degraded"):
                response.failure("INVARIANT health answered 200 without healthy/degraded")

    @task(4)
    def breakers(self) -> None:
        with self.request("GET", "/api/v1/breakers/", BREAKERS, headers=self.as_client) as r:
            listed = settle(r, {200: None})
            if listed is not None and not isinstance(listed, list):
                r.failure("INVARIANT breaker list is not a list")
