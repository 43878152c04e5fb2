"""The real service for the drills: gunicorn (2+ workers) and a runworker cluster.

The stack runs against a database URL it is given: `make drills` hands it an
embedded PostgreSQL of its own (so the outage drill may stop it); the fast
drills in the test suite hand it a database on the test server. It migrates,
loads the demo users and reads their API tokens, then starts the processes,
each in its own process group, with logs under ``workdir``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[3]
ROLES = {"client": "demo-client", "support": "demo-support", "ops": "demo-ops"}

# Short leases and fast maintenance so crash recovery is visible within a drill.
DRILL_SETTINGS = {
    "ENVIRONMENT": "development",
    "DEBUG": "false",
    "SECRET_KEY": "drills-only-secret-key-not-used-anywhere-else-0123456789",
    "JOB_LEASE_SECONDS": "5",
    "JOB_HEARTBEAT_SECONDS": "1",
    "JOB_MAINTENANCE_SECONDS": "0.5",
    "JOB_DRAIN_SECONDS": "5",
    "JOB_RETRY_INITIAL_DELAY": "0.2",
    "JOB_RETRY_MAX_DELAY": "1",
    # The alerting drill watches a few sweeps for late duplicate deliveries.
    "ALERT_SWEEP_SECONDS": "1",
    # The security drill checks what full records keep (scrubbed secrets, escaped
    # injections), thousands a minute from the demo client; compact ones keep less. The
    # anonymous rate keeps its default, which the abuse drill's flood measures.
    "ERROR_CLIENT_FULL_RECORDS_PER_MINUTE": "100000",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_database(base_url: str, name: str) -> str:
    """(Re)create database ``name`` on the server ``base_url`` points at; return its URL."""
    parts = urlsplit(base_url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(parts._replace(path=f"/{name}"))


def signal_tree(pid: int, signum: int) -> None:
    """Send ``signum`` to ``pid`` and every descendant (what a crash or the OOM killer does)."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        with suppress(psutil.Error):
            process.send_signal(signum)


@dataclass
class Stack:
    database_url: str
    workdir: Path
    web_workers: int = 2
    job_workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    tokens: dict[str, str] = field(default_factory=dict)
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def child_env(self) -> dict[str, str]:
        return {
            **os.environ,
            **DRILL_SETTINGS,
            "DATABASE_URL": self.database_url,
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "ERROR_SPOOL_PATH": str(self.workdir / "error-spool.jsonl"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prometheus"),
            "Q_WORKERS": str(self.job_workers),
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.child_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)

    def start(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "prometheus").mkdir(exist_ok=True)
        self.manage("migrate", "--verbosity", "0")
        self.manage("load_demo")
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT u.username, t.key FROM authtoken_token t"
                " JOIN auth_user u ON u.id = t.user_id WHERE u.username = ANY(%s)",
                [list(ROLES.values())],
            ).fetchall()
        by_user = dict(rows)
        self.tokens = {role: by_user[user] for role, user in ROLES.items()}
        self.start_web()
        self.start_worker()
        return self

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 -- the child owns it
        return subprocess.Popen(
            args,
            cwd=REPO,
            env=self.child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web(self) -> None:
        self.web = self._spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "controlplane.wsgi",
                "--workers",
                str(self.web_workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
            ],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log('web')}")
            with suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code < 500:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 60 s:\n{self.log('web')}")

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", [sys.executable, "manage.py", "runworker"])
        deadline = time.monotonic() + 60
        while "running (drain" not in self.log("worker"):
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"runworker did not start:\n{self.log('worker')}")
            time.sleep(0.1)

    def kill_worker(self) -> None:
        """SIGKILL the whole worker cluster: sentinel, monitor, pusher and every worker."""
        if self.worker is not None:
            signal_tree(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=30)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def api(self, role: str | None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Token {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def stored_support_ids(self, support_ids: list[str]) -> set[str]:
        """Which of ``support_ids`` are in the error table."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT support_id::text FROM errors_errorrecord"
                " WHERE support_id = ANY(%s::uuid[])",
                [support_ids],
            ).fetchall()
        return {row[0] for row in rows}

    def reset_breakers(self) -> list[str]:
        """Close every breaker an earlier drill left open or overridden (the fuzzer, as ops,
        force-opens and disables breakers it finds), as an operator would; their names."""
        reset = []
        with self.api("ops") as ops:
            for breaker in ops.get("/api/v1/breakers/").json():
                if breaker["state"] != "closed" or breaker["override"]:
                    response = ops.post(
                        f"/api/v1/breakers/{breaker['name']}/reset/",
                        json={"reason": "drill set-up: start from closed breakers"},
                    )
                    response.raise_for_status()
                    reset.append(breaker["name"])
        return reset

    def cancel_leftover_jobs(self, timeout: float = 60) -> int:
        """Cancel, as ops would, the jobs earlier drills left queued or running (the fuzzer
        creates long demo jobs and cache warms) and wait until none runs; how many."""
        cancelled = 0
        with self.api("ops") as ops:
            for status in ("queued", "running"):
                url: str | None = f"/api/v1/jobs/?status={status}&page_size=200"
                while url:
                    page = ops.get(url).json()
                    for job in page["results"]:
                        answer = ops.post(f"/api/v1/jobs/{job['id']}/cancel/")
                        cancelled += answer.status_code == 200
                    url = page["next"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.connect() as conn:
                (busy,) = conn.execute(
                    "SELECT count(*) FROM jobs_job WHERE status = 'running'"
                    " OR (status = 'queued' AND cancel_requested_at IS NULL)"
                ).fetchone()
            if not busy:
                break
            time.sleep(0.2)
        return cancelled

    def stop(self) -> None:
        for child in (self.web, self.worker):
            if child is not None and child.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        for child in (self.web, self.worker):
            if child is None:
                continue
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                signal_tree(child.pid, signal.SIGKILL)
                child.wait(timeout=10)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
