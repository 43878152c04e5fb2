from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from controlplane.errors.bounds import full_records
from controlplane.lib.permissions import CLIENTS, OPS, SUPPORT, sync_groups

REPO = Path(__file__).resolve().parent.parent

# Hashing test passwords with PBKDF2 costs ~0.3 s per user and proves nothing here.
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_env(**overrides: str) -> dict[str, str]:
    """Environment for a child Django process sharing this run's database server."""
    env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "PYTHONUNBUFFERED": "1"}
    env.update(overrides)
    return env


PYTHON = sys.executable


def django_child_env(**overrides: str) -> dict[str, str]:
    """Environment for a child Django process using this test run's (test) database."""
    from django.db import connection

    db = connection.settings_dict
    url = f"postgresql://{db['USER']}:@/{db['NAME']}?host={db['HOST']}"
    return subprocess_env(
        **{"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "controlplane.settings", **overrides}
    )


DEAD_DATABASE_URL = "postgresql://nobody@/controlplane?host=/nonexistent-socket-dir"


def run_with_dead_database(code: str, **env: str) -> Any:
    """Run ``code`` in a Django process whose database cannot be reached; returns the JSON
    object it printed last."""
    import json
    import subprocess

    result = subprocess.run(
        [PYTHON, "-c", "import django; django.setup()\n" + code],
        cwd=REPO,
        env=subprocess_env(
            DATABASE_URL=DEAD_DATABASE_URL, DJANGO_SETTINGS_MODULE="controlplane.settings", **env
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def _user(username: str, group: str | None, *, is_staff: bool = False) -> User:
    if not Group.objects.filter(name=group).exists():  # flushed by a transactional test
        sync_groups()
    user = User.objects.create_user(username=username, password="pw", is_staff=is_staff)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def client_user(db: Any) -> User:
    return _user("alice-client", CLIENTS)


@pytest.fixture
def support_user(db: Any) -> User:
    return _user("sam-support", SUPPORT, is_staff=True)


@pytest.fixture
def ops_user(db: Any) -> User:
    return _user("olga-ops", OPS, is_staff=True)


@pytest.fixture
def nobody_user(db: Any) -> User:
    return _user("nobody", None)


def token_client(user: User) -> APIClient:
    api = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return api


@pytest.fixture
def api_as() -> Any:
    return token_client


@pytest.fixture
def dead_database() -> Iterator[None]:
    """Error writes go to a server that does not exist (a real connection failure).

    The listener is connected first: its first connection is the signal to drain the spool
    in the background, which would race the test's own replays. At the end, any drain
    started meanwhile has finished (or its rows would land in the next test's tables)."""
    from controlplane.errors import drain, store
    from controlplane.lib.notifications import listener

    listener.ensure_running()
    assert listener.connected.wait(10)
    old = store.set_store(
        store.Store({"host": "/nonexistent-socket-dir", "dbname": "x", "connect_timeout": 1})
    )
    yield
    store.set_store(old)
    assert drain.drainer.wait_idle(timeout=30)


@pytest.fixture(scope="session", autouse=True)
def _close_side_connections(request: pytest.FixtureRequest) -> Any:
    """Close what runs outside Django's connections before the test database is dropped
    (set up after django_db_setup, so torn down before it)."""
    request.getfixturevalue("django_db_setup")
    yield
    from controlplane.breakers.registry import registry
    from controlplane.errors.store import get_store
    from controlplane.lib import notifications
    from lookups.resolver import reset_lookups

    reset_lookups()  # its upkeep thread flushes stats on a connection of its own
    forget_retry_budgets()  # so the budget-sharing thread has nothing left to sync
    notifications.listener.stop()
    registry.side.close()
    get_store().side.close()


def _uses_database(request: pytest.FixtureRequest) -> bool:
    return bool(
        request.node.get_closest_marker("django_db")
        # (not django_db_setup: the session fixture above puts it in every test's list)
        or {"db", "transactional_db"} & set(request.fixturenames)
    )


@pytest.fixture(autouse=True)
def _isolated_error_store(request: pytest.FixtureRequest, tmp_path: Path, settings: Any) -> Any:
    """Error records are committed on their own connection, outside the test's
    transaction: give each test its own spool and start it with empty error tables.

    (Cleaning up front, not afterwards: at teardown the test's transaction may still
    hold row locks that the side connection would wait on.)"""
    settings.ERROR_SPOOL_PATH = tmp_path / "error-spool.jsonl"
    full_records.counts.clear()  # each test starts with the full-record budget
    if _uses_database(request):
        from controlplane.errors.store import get_store

        request.getfixturevalue("django_db_setup")  # so NAME is the test database
        with get_store().side.connection().cursor() as cursor:
            cursor.execute("DELETE FROM errors_errorrecord; DELETE FROM errors_errorgroup")
    return


@pytest.fixture(autouse=True)
def _only_catalogued_error_codes(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that makes this process record an error whose code is missing from the
    catalogue (controlplane.errors.catalogue) fails, naming the code; except a test marked
    ``made_up_error_codes``, whose codes stand for any code a client could report."""
    from controlplane.errors import catalogue

    catalogue.unregistered.clear()
    yield
    found = sorted(catalogue.unregistered)
    catalogue.unregistered.clear()
    if request.node.get_closest_marker("made_up_error_codes"):
        return
    assert not found, f"error codes missing from controlplane/errors/catalogue.py: {found}"


def forget_retry_budgets() -> None:
    """This process's budgets, and the provider clients that hold one each: a cached client
    keeps the budget it was built with, however often the budgets are reset."""
    from controlplane.resilience.budget import reset_budgets
    from controlplane.resilience.providers import reset_clients

    reset_budgets()
    reset_clients()


@pytest.fixture(autouse=True)
def _fresh_retry_budgets(request: pytest.FixtureRequest) -> None:
    """Each test starts with no retry spent: budgets live in this process (which runs every
    test) and their counts are committed on a side connection, outside the test's
    transaction. (Cleaned up front, as the error tables above.)"""
    forget_retry_budgets()
    if _uses_database(request):
        from controlplane.breakers.registry import registry

        request.getfixturevalue("django_db_setup")
        with registry.side.connection().cursor() as cursor:
            cursor.execute("DELETE FROM resilience_retrybudgetbucket")
