"""Shared by the HTTP sections of the benches: a gunicorn server on a free port, and the
load driver (bench/_load.py) in a second process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _django import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(workers: int = 2, **env: str) -> Iterator[str]:
    """A gunicorn server on bench/_settings.py (the real settings plus bare views); yields
    its base URL once the bare view answers. ``env`` is added to this process's."""
    import httpx

    port = free_port()
    server_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench._settings",
        "PYTHONPATH": str(REPO),
        **env,
    }
    server_env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)  # ids made and stored, nothing exported
    bind = ["-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "controlplane.wsgi", "-w", str(workers), *bind],
        cwd=REPO,
        env=server_env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/bench/bare/x/").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def drive(url: str, seconds: float, threads: int, token: str, body: Path | None = None) -> dict:
    """bench/_load.py against ``url``: GETs, or POSTs of the JSON in ``body``."""
    command = [sys.executable, str(REPO / "bench" / "_load.py"), url, str(seconds)]
    command += [str(threads), token, *([str(body)] if body else [])]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)
