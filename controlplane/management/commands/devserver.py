"""Run the whole service for development: database, migrations, demo data, web and worker.

This is what `make run` calls. The embedded PostgreSQL is held by this
process; the web server and the worker run as child processes in their own
process groups, so Ctrl-C reaches only this supervisor, which stops them in
order and within a bounded time (a worker that ignores SIGTERM is killed).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from typing import Any

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from controlplane.demo import load_demo_data

# The worker drains within JOB_DRAIN_SECONDS and stops a few seconds later; this bounds the rest.
STOP_GRACE_SECONDS = 10


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((host, port)) == 0


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    with suppress(ProcessLookupError):  # already gone
        os.killpg(child.pid, signum)


class Command(BaseCommand):
    help = "Start embedded Postgres, migrate, load demo data, then run web + worker until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="Skip loading demo data.")

    def handle(self, *args: Any, host: str, port: int, no_demo: bool, **options: Any) -> None:
        if _port_in_use(host, port):
            raise CommandError(
                f"{host}:{port} is already in use (is `make run` already running?). "
                "Stop it, or pass --port."
            )
        # A fresh metrics folder for this run's processes (counters restart with the service).
        shutil.rmtree(settings.PROMETHEUS_MULTIPROC_DIR, ignore_errors=True)
        settings.PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
        self.stdout.write("Applying migrations...")
        call_command("migrate", interactive=False, verbosity=0)
        logins = [] if no_demo else load_demo_data()

        # Children reuse this process's database instead of registering their own handle.
        env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "PYTHONUNBUFFERED": "1"}
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = {
            "web": subprocess.Popen(
                [*manage, "runserver", f"{host}:{port}"], env=env, start_new_session=True
            ),
            "worker": subprocess.Popen([*manage, "runworker"], env=env, start_new_session=True),
        }
        stopping = False

        def request_stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        try:
            self._wait_until_up(host, port, children)
            self._print_banner(host, port, logins)
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        raise CommandError(
                            f"the {name} process exited with code {child.returncode}"
                        )
                time.sleep(0.2)
        finally:
            self._stop(children)

    def _wait_until_up(self, host: str, port: int, children: dict[str, subprocess.Popen]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if children["web"].poll() is not None:
                raise CommandError("the web server failed to start; see its output above")
            try:
                httpx.get(f"http://{host}:{port}/admin/login/", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise CommandError("the web server did not answer within 60 s")

    def _print_banner(self, host: str, port: int, logins: list) -> None:
        base = f"http://{host}:{port}"
        lines = [
            "",
            "=" * 72,
            f"Control plane is up.  Admin: {base}/admin/   API: {base}/api/v1/",
            f"API docs: {base}/api/docs/",
            "Worker: django-q2 cluster running (check with `.venv/bin/python manage.py qinfo`).",
        ]
        if logins:
            lines.append("Logins (user / password / group / API token):")
            lines += [f"  {x.username:<13} {x.password:<6} {x.group:<10} {x.token}" for x in logins]
            client = next(x for x in logins if x.username == "demo-client")
            lines.append(f'Try: curl -H "Authorization: Token {client.token}" {base}/api/v1/')
        lines += ["Press Ctrl-C to stop web, worker and database.", "=" * 72, ""]
        self.stdout.write("\n".join(lines))

    def _stop(self, children: dict[str, subprocess.Popen]) -> None:
        self.stdout.write("Stopping web and worker...")
        for child in children.values():
            if child.poll() is None:
                _signal_group(child, signal.SIGTERM)
        grace = STOP_GRACE_SECONDS + settings.JOB_DRAIN_SECONDS
        deadline = time.monotonic() + grace
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop within {grace:.0f} s; killing it")
                _signal_group(child, signal.SIGKILL)
                child.wait()
        self.stdout.write("Stopped.")
