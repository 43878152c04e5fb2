"""`make run`'s supervisor, end to end: web + worker up, demo logins work, Ctrl-C stops all."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from tests.conftest import PYTHON, REPO, free_port, subprocess_env


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


@pytest.mark.slow
def test_it_runs_web_and_worker_and_stops_on_ctrl_c(scratch_database_url: str) -> None:
    port = free_port()
    env = subprocess_env(DATABASE_URL=scratch_database_url)
    proc = subprocess.Popen(
        [PYTHON, "manage.py", "devserver", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = _wait_for_banner(proc, timeout=90)
        base = f"http://127.0.0.1:{port}"
        assert f"Admin: {base}/admin/" in banner
        client_token = re.search(r"demo-client\s+demo\s+clients\s+([0-9a-f]{40})", banner).group(1)

        api = httpx.get(f"{base}/api/v1/", headers={"Authorization": f"Token {client_token}"})
        assert api.status_code == 200

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
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, _ = proc.communicate(timeout=30)
        stop_seconds = time.monotonic() - started
    assert proc.returncode == 0, out
    assert "Stopped." in out
    assert stop_seconds < 15
