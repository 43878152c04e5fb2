"""Alerting: ops are told once, promptly, even through a receiver that fails.

A real HTTP receiver on 127.0.0.1 is the one channel of the drill (a signed JSON webhook,
made in the stack's database as ops would in the admin, for breaker opened / closed
events only). It answers 503 to the first ``failures_first`` requests of each event and
200 afterwards. Each round, two child processes (``_alerting_child``, standing for two web
processes) fail calls through one of this service's breakers at the same moment until it
opens; the stack's two gunicorn workers and its worker cluster (whose sweep also catches
up on breaker changes) see the same history. Then ops reset the breaker through the API.

Checks, from three independent records (what the receiver got, the BreakerEvent rows, the
AlertDelivery rows):

* each opening and each reset reaches the receiver as exactly one event (one event id per
  breaker change), with exactly ``failures_first`` + 1 requests: retried through the
  failures, never again after the 200 (no duplicate under 2 + 2 + 2 processes);
* every request's signature verifies against the channel's secret (HMAC-SHA256 over
  ``"<t>." + body``, as the README tells receivers to check);
* the first request of an opening arrives within ``FIRST_ATTEMPT_BOUND_SECONDS`` (2 s) of
  the BreakerEvent that opened it;
* the admin's delivery rows agree: ``sent``, ``failures_first`` + 1 attempts, the response
  codes in order.

Duplicates could come late (the workers' catch-up sweep, a retried job): after the last
round the receiver is watched for ``LATE_WINDOW_SWEEPS`` sweep intervals before counting.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.reliability.drills import DrillResult
from tests.reliability.drills.stack import REPO, Stack

SECRET = "drill-alerting-secret"
CHANNEL = "drill-alerting"
FIRST_ATTEMPT_BOUND_SECONDS = 2.0
LATE_WINDOW_SWEEPS = 3
WAIT_SECONDS = 60.0


@dataclass
class Request:
    at: float
    event_id: int
    kind: str
    subject: str
    status: int
    signed: bool


def signature_ok(header: str, body: bytes) -> bool:
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        stamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - stamp) <= 300 and hmac.compare_digest(mac, parts.get("v1", ""))


class Receiver:
    """Answers 503 to the first ``failures_first`` requests of each event id, then 200."""

    def __init__(self, failures_first: int) -> None:
        self.failures_first = failures_first
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.handle(self, body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ops"

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        message = json.loads(body)
        with self.lock:
            seen = sum(1 for r in self.requests if r.event_id == message["id"])
            status = 503 if seen < self.failures_first else 200
            self.requests.append(
                Request(
                    at=time.time(),
                    event_id=message["id"],
                    kind=message["kind"],
                    subject=message["subject"],
                    status=status,
                    signed=signature_ok(request.headers.get("X-Controlplane-Signature", ""), body),
                )
            )
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def of(self, subject: str, kind: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.subject == subject and r.kind == kind]

    def wait_delivered(self, subject: str, kind: str) -> list[Request]:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            requests = self.of(subject, kind)
            if any(r.status == 200 for r in requests):
                return requests
            time.sleep(0.05)
        return self.of(subject, kind)


def add_channel(stack: Stack, url: str) -> None:
    with stack.connect() as conn:
        conn.execute(
            "INSERT INTO health_alertchannel (name, kind, target, secret, enabled, max_per_hour,"
            " events, source) VALUES (%s, 'webhook', %s, %s, true, 10000,"
            " ARRAY['breaker.opened', 'breaker.closed'], '')"
            " ON CONFLICT (name) DO UPDATE SET target = EXCLUDED.target, enabled = true",
            [CHANNEL, url, SECRET],
        )


def disable_channel(stack: Stack) -> None:
    with stack.connect() as conn:
        conn.execute("UPDATE health_alertchannel SET enabled = false WHERE name = %s", [CHANNEL])


def trip(stack: Stack, name: str) -> list[int]:
    fail_at = time.time() + 3  # both children are up and have loaded the breaker by then
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.drills._alerting_child", name, str(fail_at)],
            cwd=REPO,
            env=stack.child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    failures = []
    for child in children:
        out, err = child.communicate(timeout=120)
        if child.returncode != 0:
            raise RuntimeError(f"alerting child failed:\n{err[-2000:]}")
        failures.append(json.loads(out.strip().splitlines()[-1])["failures"])
    return failures


def opened_at(stack: Stack, name: str) -> float | None:
    with stack.connect() as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM e.created_at) FROM breakers_breakerevent e"
            " JOIN breakers_breaker b ON b.id = e.breaker_id"
            " WHERE b.name = %s AND e.to_state = 'open' ORDER BY e.id LIMIT 1",
            [name],
        ).fetchone()
    return float(row[0]) if row else None


def delivery_rows(stack: Stack, names: list[str]) -> list[tuple[str, str, str, int, list]]:
    with stack.connect() as conn:
        return conn.execute(
            "SELECT e.subject, e.kind, d.status, d.attempts, d.response_codes"
            " FROM health_alertdelivery d JOIN health_alertevent e ON e.id = d.event_id"
            " JOIN health_alertchannel c ON c.id = d.channel_id"
            " WHERE c.name = %s AND e.subject = ANY(%s)",
            [CHANNEL, names],
        ).fetchall()


def ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


def run(stack: Stack, rounds: int = 3, failures_first: int = 2) -> DrillResult:
    result = DrillResult("alerting")
    receiver = Receiver(failures_first)
    receiver.thread.start()
    add_channel(stack, receiver.url)
    prefix = f"drill-alerts-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{n}" for n in range(rounds)]
    first_attempt, delivered, reset_delivered = [], [], []
    try:
        for name in names:
            failures = trip(stack, name)
            opened = opened_at(stack, name)
            result.check(opened is not None, f"{name}: no opening after {failures} failures")
            got = receiver.wait_delivered(name, "breaker.opened")
            result.check(bool(got), f"{name}: the opening reached no one in {WAIT_SECONDS} s")
            if opened is not None and got:
                first_attempt.append(got[0].at - opened)
                delivered.append(max(r.at for r in got) - opened)
            with stack.api("ops") as api:
                reset_at = time.time()
                answer = api.post(f"/api/v1/breakers/{name}/reset/", json={"reason": "drill"})
            result.check(answer.status_code == 200, f"{name}: reset answered {answer.status_code}")
            got = receiver.wait_delivered(name, "breaker.closed")
            result.check(bool(got), f"{name}: the reset reached no one in {WAIT_SECONDS} s")
            if got:
                reset_delivered.append(max(r.at for r in got) - reset_at)
        sweep = float(stack.child_env().get("ALERT_SWEEP_SECONDS", "10"))
        time.sleep(LATE_WINDOW_SWEEPS * sweep)  # the window a late duplicate would show in
    finally:
        disable_channel(stack)
        receiver.server.shutdown()

    expected_codes = [503] * failures_first + [200]
    for name in names:
        for kind in ("breaker.opened", "breaker.closed"):
            requests = receiver.of(name, kind)
            events = {r.event_id for r in requests}
            result.check(len(events) <= 1, f"{name} {kind}: {len(events)} events for one change")
            codes = [r.status for r in requests]
            result.check(
                codes == expected_codes,
                f"{name} {kind}: the receiver answered {codes}, expected {expected_codes}",
            )
            result.check(
                all(r.signed for r in requests), f"{name} {kind}: a request failed its signature"
            )
    for seconds in first_attempt:
        result.check(
            seconds <= FIRST_ATTEMPT_BOUND_SECONDS,
            f"an opening's first delivery attempt came {seconds:.2f} s after it",
        )
    rows = delivery_rows(stack, names)
    result.check(len(rows) == 2 * rounds, f"{len(rows)} delivery rows for {2 * rounds} changes")
    for subject, kind, status, attempts, codes in rows:
        result.check(
            (status, attempts, list(codes)) == ("sent", failures_first + 1, expected_codes),
            f"{subject} {kind}: delivery row {status}, {attempts} attempts, codes {codes}",
        )
    requests = [r for r in receiver.requests if r.subject.startswith(prefix)]
    result.figures = {
        "rounds": rounds,
        "receiver_failures_first": failures_first,
        "requests": len(requests),
        "events": len({r.event_id for r in requests}),
        "successful_deliveries": sum(1 for r in requests if r.status == 200),
        "open_to_first_attempt_ms": ms(first_attempt),
        "open_to_delivered_ms": ms(delivered),
        "reset_to_delivered_ms": ms(reset_delivered),
    }
    return result
