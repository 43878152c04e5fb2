"""An upstream on 127.0.0.1 that answers every call after a delay, counting calls per path
and how many run at once per path (a job run twice concurrently shows as 2)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROVIDER = "slowpoke"
JOB_PATH = "/v1/slow"


class SlowUpstream:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: Counter[str] = Counter()
        self.running: Counter[str] = Counter()
        self.most_at_once: Counter[str] = Counter()
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> SlowUpstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        if path.startswith(JOB_PATH):
            with self.lock:
                self.calls[path] += 1
                self.running[path] += 1
                self.most_at_once[path] = max(self.most_at_once[path], self.running[path])
            time.sleep(self.delay)
            with self.lock:
                self.running[path] -= 1
        data = json.dumps({"path": path}).encode()
        with suppress(OSError):
            request.send_response(200)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)

    def provider(self, timeout: float) -> dict[str, dict]:
        """The PROVIDERS entry for the stack: http.request jobs may GET any JOB_PATH call."""
        return {
            PROVIDER: {
                "base_url": self.url,
                "mode": "real",
                "timeout": timeout,
                "health_path": "/health",
                "client_calls": [f"GET {JOB_PATH}/*"],
            }
        }
