"""Run the whole service for development: database, migrations, demo data, web and worker.

This is what `make run` calls. The web server is gunicorn with the production
settings (`gunicorn.conf.py`), so caches, the change listener and error envelopes
behave as they do in production; only `--reload` (restart workers when code
changes), one worker and an access log on the terminal are added. The worker is
`runworker`.

The embedded PostgreSQL is held by this process; the web server and the worker
run as child processes in their own process groups, so Ctrl-C reaches only this
supervisor, which stops them in order and within a bounded time. Then it kills
whatever is left anywhere under it: it is a child subreaper, so a process
orphaned on the way (a worker whose sentinel died) is still its descendant.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from controlplane.demo import load_demo_data
from controlplane.lib import processes

# The worker drains within JOB_DRAIN_SECONDS and stops a few seconds later; this bounds the rest.
STOP_GRACE_SECONDS = 10
# gunicorn's exit codes when a worker cannot import the project (code being edited).
GUNICORN_BOOT_FAILED = (3, 4)
# Folders under the project that hold no source to watch.
NOT_SOURCE = {".venv", "var", ".git", "node_modules", "__pycache__"}


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((host, port)) == 0


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    with suppress(ProcessLookupError):  # already gone
        os.killpg(child.pid, signum)


def _source_stamp(root: Path) -> float:
    """The newest modification time of the project's Python files."""
    newest = 0.0
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in NOT_SOURCE]
        for name in files:
            if name.endswith(".py"):
                with suppress(OSError):  # removed meanwhile
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
    return newest


class Command(BaseCommand):
    help = "Start embedded Postgres, migrate, load demo data, then run web + worker until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--web-workers",
            type=int,
            default=1,
            help="gunicorn worker processes (each has its own caches, as in production).",
        )
        parser.add_argument("--no-demo", action="store_true", help="Skip loading demo data.")

    def handle(
        self, *args: Any, host: str, port: int, web_workers: int, no_demo: bool, **options: Any
    ) -> None:
        if _port_in_use(host, port):
            raise CommandError(
                f"{host}:{port} is already in use (is `make run` already running?). "
                "Stop it, or pass --port."
            )
        processes.become_subreaper()
        # A fresh metrics folder for this run's processes (counters restart with the service).
        shutil.rmtree(settings.PROMETHEUS_MULTIPROC_DIR, ignore_errors=True)
        settings.PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
        self.stdout.write("Applying migrations...")
        call_command("migrate", interactive=False, verbosity=0)
        logins = [] if no_demo else load_demo_data()

        # Children reuse this process's database instead of registering their own handle.
        env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "PYTHONUNBUFFERED": "1"}
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        web = [
            *(sys.executable, "-m", "gunicorn", "controlplane.wsgi"),
            *("--config", str(settings.BASE_DIR / "gunicorn.conf.py")),
            *("--bind", f"{host}:{port}", "--workers", str(web_workers)),
            *("--reload", "--access-logfile", "-", "--graceful-timeout", "5"),
            "--no-control-socket",  # its default path is shared by every gunicorn of the user
        ]

        def spawn(command: list[str]) -> subprocess.Popen:
            return subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, start_new_session=True)

        stopping = False

        def request_stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        # Before the first child exists: a Ctrl-C from now on stops whatever was started.
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        children: dict[str, subprocess.Popen] = {}
        try:
            children["web"] = spawn(web)
            children["worker"] = spawn([*manage, "runworker"])
            self._wait_until_up(host, port, children, lambda: stopping)
            if not stopping:
                self._print_banner(host, port, logins)
            while not stopping:
                for name, child in children.items():
                    if child.poll() is None:
                        continue
                    if name == "web" and child.returncode in GUNICORN_BOOT_FAILED:
                        self._wait_for_a_fix(lambda: stopping)
                        if not stopping:
                            children["web"] = spawn(web)
                            self.stdout.write("Restarting the web server...")
                        break
                    raise CommandError(f"the {name} process exited with code {child.returncode}")
                time.sleep(0.2)
        finally:
            self._stop(children)

    def _wait_for_a_fix(self, stopping: Callable[[], bool]) -> None:
        """gunicorn --reload stops for good when the project cannot be imported (runserver
        waited): wait for the next change to a source file instead."""
        self.stderr.write(
            "The web server could not load the project (see the error above); "
            "it restarts when a source file changes."
        )
        stamp = _source_stamp(settings.BASE_DIR)
        while not stopping() and _source_stamp(settings.BASE_DIR) == stamp:
            time.sleep(1.0)

    def _wait_until_up(
        self,
        host: str,
        port: int,
        children: dict[str, subprocess.Popen],
        stopping: Callable[[], bool],
    ) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if stopping():
                return
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
            "Web: gunicorn (production settings, reloads on code changes).",
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
        tree = processes.descendants()  # now: a child that dies may orphan its own
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
                child.kill()
                child.wait()
        # Not only their process groups: the worker's cluster has a group of its own.
        leftovers = processes.alive([*tree, *processes.descendants()])
        if leftovers:
            pids = ", ".join(str(process.pid) for process in leftovers)
            self.stderr.write(f"killing {len(leftovers)} process(es) left behind: {pids}")
            processes.kill_tree(leftovers)
        self.stdout.write("Stopped.")
