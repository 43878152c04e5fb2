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

    # Ping every 1 s, 2 s deadline: noticed within ~3 s (TCP alone: ~15 minutes).
    assert cut["detected"] < 4.5, cut
    # The query that was stuck on the dead network is cut loose when it is noticed.
    assert cut["stuck"]["error"] == "OperationalError", cut
    assert cut["stuck"]["seconds"] < 5.0, cut
    # Then a new connection is refused at once, not after DB_CONNECT_TIMEOUT (5 s).
    assert cut["refused"] == "OperationalError", cut
    assert cut["refused_in"] < 0.2, cut
    # And the process trusts the database again within about a second of its return.
    assert back["reachable_in"] < 3.0, back


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


def test_a_refusal_from_a_server_that_answers_does_not_close_the_gate() -> None:
    """Too many connections or a bad password: the server is there, and the process's other
    connections may work; only silence, a lost connection or a shutdown closes the gate."""
    import psycopg

    from controlplane.lib.notifications import _means_unreachable

    assert _means_unreachable(psycopg.OperationalError("connection refused"))
    assert _means_unreachable(psycopg.errors.AdminShutdown())  # 57P01, pg_ctl restart
    assert _means_unreachable(psycopg.errors.CannotConnectNow())  # 57P03, starting up
    assert not _means_unreachable(psycopg.errors.TooManyConnections())  # 53300
    assert not _means_unreachable(psycopg.errors.InvalidPassword())  # 28P01
