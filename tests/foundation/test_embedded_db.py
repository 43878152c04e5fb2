"""The embedded PostgreSQL shared by several processes started at the same moment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
from pgserver.utils import PostmasterInfo

from tests.conftest import PYTHON, REPO

STARTER = """
import sys, psycopg
from pathlib import Path
from controlplane.lib import embedded_db
uri = embedded_db.ensure_running(Path(sys.argv[1]))
with psycopg.connect(uri) as conn:
    with conn.transaction():  # CREATE TABLE IF NOT EXISTS itself races in PostgreSQL
        conn.execute("SELECT pg_advisory_xact_lock(4242)")
        conn.execute("CREATE TABLE IF NOT EXISTS marker (who int)")
    conn.execute("INSERT INTO marker VALUES (%s)", [int(sys.argv[2])])
print(uri)
sys.stdin.read()  # hold the server until the test lets go
"""


def _start_many(data_dir: Path, count: int) -> list[str]:
    children = [
        subprocess.Popen(
            [PYTHON, "-c", STARTER, str(data_dir), str(n)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    uris = [child.stdout.readline().strip() for child in children]
    # Still running: every child holds a handle, so the server is up.
    info = PostmasterInfo.read_from_pgdata(data_dir)
    assert info is not None and info.is_running()
    for child in children:
        _, err = child.communicate("", timeout=60)
        assert child.returncode == 0, err
    return uris


def test_it_is_initialised_once_shared_and_stopped_by_the_last_user(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    uris = _start_many(data_dir, 4)

    assert len(set(uris)) == 1 and uris[0]
    # The last process out stopped the server.
    info = PostmasterInfo.read_from_pgdata(data_dir)
    assert info is None or not info.is_running()

    # A second round reuses the same cluster: the first round's rows are still there.
    uris = _start_many(data_dir, 2)
    holder = subprocess.Popen(
        [PYTHON, "-c", STARTER, str(data_dir), "99"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        uri = holder.stdout.readline().strip()
        with psycopg.connect(uri) as conn:
            rows = sorted(r[0] for r in conn.execute("SELECT who FROM marker"))
        assert rows == [0, 0, 1, 1, 2, 3, 99]
    finally:
        holder.communicate("", timeout=60)


def test_a_killed_user_does_not_keep_the_server_forever(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    victim = subprocess.Popen(
        [PYTHON, "-c", STARTER, str(data_dir), "1"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    victim.stdout.readline()
    victim.kill()
    victim.wait()
    # The next user prunes the dead handle; when it exits it is the last user and stops the server.
    _start_many(data_dir, 1)
    info = PostmasterInfo.read_from_pgdata(data_dir)
    assert info is None or not info.is_running()
