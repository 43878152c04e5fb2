"""A database whose network drops every packet is noticed within seconds, and then every
query fails fast instead of waiting for TCP to give up (~15 minutes).

A child Django process reaches the test database through a TCP proxy that stops
forwarding without closing anything (tests/db_proxy.py).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection

from tests.conftest import PYTHON, REPO, subprocess_env
from tests.db_proxy import DatabaseProxy

CHILD = r"""
import json, sys, threading, time
import django
django.setup()
from django.db import connection, connections
from controlplane.lib import dbgate
from controlplane.lib.notifications import listener

def report(**figures):
    print(json.dumps(figures), flush=True)

listener.ensure_running()
deadline = time.monotonic() + 20
while not listener.connected.is_set():
    assert time.monotonic() < deadline, "listener did not connect"
    time.sleep(0.05)
stuck = {}
go, connected = threading.Event(), threading.Event()

def stuck_query():
    with connections["default"].cursor() as cursor:  # connected before the cut
        cursor.execute("SELECT 1")
    connected.set()
    go.wait()
    started = time.monotonic()
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        stuck["error"] = None
    except Exception as exc:
        stuck["error"] = type(exc).__name__
    stuck["seconds"] = time.monotonic() - started

thread = threading.Thread(target=stuck_query)
thread.start()
assert connected.wait(20), "the query thread did not connect"
report(ready=True)
sys.stdin.readline()  # the parent turned the network off
cut = time.monotonic()
go.set()
while not dbgate.is_unreachable():
    assert time.monotonic() - cut < 30, "the blackhole was never noticed"
    time.sleep(0.02)
detected = time.monotonic() - cut
thread.join(30)
connection.close()
started = time.monotonic()
try:
    connection.ensure_connection()
    refused = None
except Exception as exc:
    refused = type(exc).__name__
refused_in = time.monotonic() - started
report(detected=detected, stuck=stuck, refused=refused, refused_in=refused_in)
sys.stdin.readline()  # the parent turned the network back on
back = time.monotonic()
while dbgate.is_unreachable():
    assert time.monotonic() - back < 30, "the database never came back"
    time.sleep(0.02)
reachable_in = time.monotonic() - back
connection.close()
with connection.cursor() as cursor:
    cursor.execute("SELECT 1")
report(reachable_in=reachable_in)
"""


def _read(child: subprocess.Popen) -> dict[str, Any]:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, child.stderr.read() if child.stderr else "child ended"
    return json.loads(line)


@pytest.mark.slow
@pytest.mark.django_db
def test_it_notices_a_blackholed_database_and_fails_fast_until_it_returns() -> None:
    proxy = DatabaseProxy.for_test_database()
    env = subprocess_env(
        DATABASE_URL=proxy.url(),
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        ENVIRONMENT="test",
        DB_PING_SECONDS="1",
        DB_PING_TIMEOUT="2",
    )
    child = subprocess.Popen(
        [PYTHON, "-c", CHILD],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _read(child) == {"ready": True}
        proxy.hang()
        child.stdin.write("cut\n")
        child.stdin.flush()
        cut = _read(child)
        proxy.resume()
        child.stdin.write("back\n")
        child.stdin.flush()
        back = _read(child)
        assert child.wait(timeout=30) == 0, child.stderr.read()
    finally:
        child.kill()
        proxy.stop()

    # Ping every 1 s with a 2 s deadline, then a reconnect that gets 2 s too: noticed
    # within ~5 s (TCP alone: ~15 minutes); the bound leaves room for a loaded machine.
    assert cut["detected"] < 8.0, cut
    # The query that was stuck on the dead network is cut loose when it is noticed.
    assert cut["stuck"]["error"] == "OperationalError", cut
    assert cut["stuck"]["seconds"] < 8.5, cut
    # Then a new connection is refused without a round trip, not after DB_CONNECT_TIMEOUT.
    assert cut["refused"] == "OperationalError", cut
    assert cut["refused_in"] < 1.0, cut
    # And the process trusts the database again within about a second of its return.
    assert back["reachable_in"] < 5.0, back


def test_the_proxy_forwards_until_told_not_to() -> None:
    """The test above is only meaningful if the proxy really passes traffic normally."""
    import psycopg

    proxy = DatabaseProxy.for_test_database()
    try:
        url = proxy.url("postgres")
        assert urlsplit(url).hostname == "127.0.0.1"
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
    finally:
        proxy.stop()


def _connect_error(**conninfo: Any) -> Exception:
    import psycopg

    try:
        psycopg.connect(connect_timeout=5, **conninfo).close()
    except psycopg.Error as exc:
        return exc
    raise AssertionError(f"{conninfo} connected")


@pytest.mark.django_db
def test_a_refusal_from_a_server_that_answers_does_not_close_the_gate() -> None:
    """No such database, or too many connections: the server is there, and the process's
    other connections may work. Only silence, a lost connection or a shutdown counts (real
    connection attempts: psycopg gives them no SQLSTATE, only text)."""
    import psycopg

    from controlplane.lib.dbgate import means_unreachable

    db = connection.settings_dict
    server = {"host": db["HOST"], "port": db["PORT"] or 5432, "user": db["USER"]}
    assert not means_unreachable(_connect_error(**server, dbname="no_such_database_here"))
    stranger = {**server, "user": "nobody_here"}
    assert not means_unreachable(_connect_error(**stranger, dbname="postgres"))
    assert means_unreachable(_connect_error(host="/nonexistent-socket-dir", dbname="x"))
    assert means_unreachable(psycopg.errors.AdminShutdown())  # 57P01, pg_ctl restart
    assert means_unreachable(psycopg.errors.CannotConnectNow())  # 57P03, starting up
    assert not means_unreachable(psycopg.errors.TooManyConnections())  # 53300 on a query
