"""The flapping drill's upstream: a real HTTP server on 127.0.0.1 whose behaviour the drill
switches between healthy, 500, timeout, 429 and dead (503) phases, recording every request it
receives (see flapping.py)."""

from __future__ import annotations

import json
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROVIDER = "flappy"
CODE = "FLAPPY"
CALL_PATH = "/v1/flap"
JOB_PATH = "/v1/flap-job"
HEALTH_PATH = "/health"
CLIENT_TIMEOUT = 1.0  # seconds; the timeout phase hangs well past it
HANG_SECONDS = 2.5
OPEN_CODE = f"{CODE}_CIRCUIT_OPEN"
CODE_OF_STATUS = {
    500: "SERVER_ERROR",
    503: "SERVER_ERROR",
    429: "RATE_LIMIT_ERROR",
    None: "TIMEOUT_ERROR",
}
BUDGET_CODE = "RETRY_BUDGET_EXHAUSTED"

RETRY = {
    "RETRY_MAX_ATTEMPTS": "3",
    "RETRY_INITIAL_DELAY": "0.2",
    "RETRY_FACTOR": "2",
    "RETRY_MAX_DELAY": "1",
    "RETRY_JITTER": "full",
    "RETRY_DEADLINE": "8",
    "RETRY_AFTER_CAP": "3",
    # The retry budget at its default ratio (0.2), its time compressed twelvefold so the dead
    # phase spans two windows: a 5 s window synced every 0.25 s (as 60 s synced every 3 s),
    # with a floor to match.
    "RETRY_BUDGET_WINDOW_SECONDS": "5",
    "RETRY_BUDGET_SYNC_SECONDS": "0.25",
    "RETRY_BUDGET_MIN_PER_WINDOW": "3",
}


@dataclass(frozen=True)
class Hit:
    at: float  # time.time() on receipt (same clock as the database's now() on this host)
    phase: int  # index into flapping.PHASES (or -1 before the drill)
    kind: str
    method: str
    path: str
    request_id: str
    status: int | None  # what was answered; None when the request was left hanging


class Upstream:
    """A threaded HTTP server on 127.0.0.1 whose behaviour the drill switches."""

    def __init__(self, hang_seconds: float = HANG_SECONDS) -> None:
        self.hang_seconds = hang_seconds
        self.kind = "healthy"
        self.phase = -1
        self.retry_after: int | None = None
        self.hits: list[Hit] = []
        self.health_hits = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "start() the upstream first"
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def set_phase(self, index: int, kind: str, retry_after: int | None = None) -> None:
        with self.lock:
            self.phase, self.kind, self.retry_after = index, kind, retry_after

    def recorded(self) -> list[Hit]:
        with self.lock:
            return list(self.hits)

    def start(self) -> Upstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self) -> None:
                upstream.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases hanging handlers
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        at = time.time()
        length = int(request.headers.get("Content-Length") or 0)
        if length:
            request.rfile.read(length)
        path = request.path.split("?", 1)[0]
        if path == HEALTH_PATH:  # the worker's scheduled provider probe: not a client call
            with self.lock:
                self.health_hits += 1
            self.answer(request, 200, {"ok": True})
            return
        with self.lock:
            phase, kind, retry_after = self.phase, self.kind, self.retry_after
        status = {"healthy": 200, "error": 500, "429": 429, "timeout": None, "dead": 503}[kind]
        hit = Hit(
            at=at,
            phase=phase,
            kind=kind,
            method=request.command,
            path=path,
            request_id=request.headers.get("X-Request-Id", ""),
            status=status,
        )
        with self.lock:
            self.hits.append(hit)
        if status is None:
            self.stopping.wait(self.hang_seconds)
            status = 200  # far too late: the client gave up long ago
        headers = {"Retry-After": str(retry_after)} if status == 429 else {}
        self.answer(request, status, {"phase": kind, "status": status}, headers)

    @staticmethod
    def answer(
        request: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        with suppress(OSError):  # the client may have hung up (timeouts)
            request.send_response(status)
            for key, value in {**(headers or {}), "Content-Type": "application/json"}.items():
                request.send_header(key, value)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)


def provider_settings(upstream: Upstream) -> dict[str, str]:
    """Environment for the stack: the upstream as provider ``flappy``, short retries."""
    providers = {
        PROVIDER: {
            "base_url": upstream.url,
            "mode": "real",
            "timeout": CLIENT_TIMEOUT,
            "health_path": HEALTH_PATH,
            "client_calls": [f"GET {JOB_PATH}/*"],  # the drill's http.request jobs
        }
    }
    return {"PROVIDERS": json.dumps(providers), **RETRY}
