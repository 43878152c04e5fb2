"""`make run`'s supervisor, end to end: web + worker up, demo logins work, the web behaves
as in production (gunicorn: lookup cache, error envelope), Ctrl-C stops every process."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from controlplane.lib.processes import alive
from tests.conftest import PYTHON, REPO, free_port, subprocess_env
from tests.db_proxy import DatabaseProxy


@pytest.fixture
def scratch_database_url() -> Iterator[str]:
    """A throwaway database on the same server, so the run does not touch the dev data."""
    default = settings.DATABASES["default"]
    name = f"controlplane_e2e_{int(time.time() * 1000)}"
    admin_uri = f"postgresql://{default['USER']}:@/postgres?host={default['HOST']}"
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"postgresql://{default['USER']}:@/{name}?host={default['HOST']}"
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _wait_for_banner(proc: subprocess.Popen, timeout: float) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("Press Ctrl-C"):
            return "".join(seen)
    proc.kill()
    raise AssertionError("devserver did not come up:\n" + "".join(seen))


STATUS_PROBE = (
    "import django; django.setup(); from django_q.status import Stat; "
    "print(' '.join(str(s.status) for s in Stat.get_all()))"
)


def _cluster_statuses(env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [PYTHON, "-c", STATUS_PROBE],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "controlplane.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _env(database_url: str, folder: Path, **overrides: str) -> dict[str, str]:
    """What `make run` runs with (development, DEBUG on), with files of its own: devserver
    empties its metrics folder, which must not be this test run's."""
    return subprocess_env(
        DATABASE_URL=database_url,
        ENVIRONMENT="development",
        DEBUG="true",
        PROMETHEUS_MULTIPROC_DIR=str(folder / "prometheus"),
        ERROR_SPOOL_PATH=str(folder / "error-spool.jsonl"),
        **overrides,
    )


def _start(port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "manage.py", "devserver", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _token(banner: str, user: str, group: str) -> str:
    return re.search(rf"{user}\s+demo\s+{group}\s+([0-9a-f]{{40}})", banner).group(1)


def _tree(proc: subprocess.Popen) -> list[psutil.Process]:
    root = psutil.Process(proc.pid)
    return [root, *root.children(recursive=True)]


def _kill_leftovers(processes: list[psutil.Process]) -> None:
    for process in alive(processes):
        with contextlib.suppress(psutil.Error):
            process.kill()


@pytest.mark.slow
def test_it_runs_web_and_worker_and_stops_on_ctrl_c(
    scratch_database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = _env(scratch_database_url, tmp_path)
    proc = _start(port, env)
    tree: list[psutil.Process] = []
    try:
        banner = _wait_for_banner(proc, timeout=90)
        base = f"http://127.0.0.1:{port}"
        assert f"Admin: {base}/admin/" in banner
        client_token = _token(banner, "demo-client", "clients")
        as_client = {"Authorization": f"Token {client_token}"}

        api = httpx.get(f"{base}/api/v1/", headers=as_client)
        assert api.status_code == 200
        assert api.headers["Server"] == "gunicorn"  # what production runs

        # The lookup cache serves the second of two identical lookups, from the start.
        sources = [
            httpx.get(f"{base}/api/v1/lookups/wall-painting/", headers=as_client).json()["source"]
            for _ in range(2)
        ]
        assert sources == ["db", "cache"]

        # An unknown API path answers the error envelope (DEBUG is on), and its id resolves.
        missing = httpx.get(f"{base}/api/v1/no-such/")
        assert missing.status_code == 404
        error = missing.json()["error"]
        assert error["code"] == "NOT_FOUND"
        as_support = {"Authorization": f"Token {_token(banner, 'demo-support', 'support')}"}
        record = httpx.get(f"{base}/api/v1/errors/{error['support_id']}/", headers=as_support)
        assert record.status_code == 200
        assert record.json()["record"]["request_path"] == "/api/v1/no-such/"

        # The admin's static files are served in development.
        css = httpx.get(f"{base}/static/admin/css/base.css")
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")

        with httpx.Client(base_url=base) as browser:
            browser.get("/admin/login/")
            login = browser.post(
                "/admin/login/?next=/admin/",
                data={
                    "username": "demo-ops",
                    "password": "demo",
                    "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                    "next": "/admin/",
                },
            )
            assert login.status_code == 302 and login.headers["location"] == "/admin/"
            assert "Log out" in browser.get("/admin/").text

        # The worker cluster reports itself where `qinfo` looks (django-q2's shared cache).
        deadline = time.monotonic() + 30
        statuses: list[str] = []
        while time.monotonic() < deadline and not statuses:
            statuses = _cluster_statuses(env)
            time.sleep(0.5)
        assert statuses
        assert set(statuses) <= {"Idle", "Working", "Starting"}, statuses
    finally:
        tree = _tree(proc)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, _ = proc.communicate(timeout=30)
        stop_seconds = time.monotonic() - started
        _kill_leftovers(tree)
    assert proc.returncode == 0, out
    assert "Stopped." in out
    assert stop_seconds < 15
    assert len(tree) >= 7  # devserver, gunicorn + worker, runworker + sentinel + 4 children
    assert alive(tree) == [], out


@pytest.mark.slow
def test_ctrl_c_with_the_database_down_ends_every_process(
    scratch_database_url: str, tmp_path: Path
) -> None:
    """The worker's drain cannot reach the database; Ctrl-C still ends every process of
    the tree, the cluster's own process group included, within the drain time + a few s."""
    drain = 3
    port = free_port()
    with DatabaseProxy.for_test_database() as database:
        url = database.url(urlsplit(scratch_database_url).path.lstrip("/"))
        proc = _start(port, _env(url, tmp_path, JOB_DRAIN_SECONDS=str(drain)))
        tree: list[psutil.Process] = []
        try:
            _wait_for_banner(proc, timeout=90)
            tree = _tree(proc)
            database.stop()
            proc.send_signal(signal.SIGINT)
            started = time.monotonic()
            out, _ = proc.communicate(timeout=60)
            stop_seconds = time.monotonic() - started
        finally:
            _kill_leftovers(tree)
            if proc.poll() is None:
                proc.kill()
    assert alive(tree) == [], out
    assert stop_seconds < drain + 7, out
    assert "Stopped." in out
