"""An embedded PostgreSQL for machines without a database install.

When ``DATABASE_URL`` is unset, settings call :func:`ensure_running`, which
initialises (once) and starts (or reuses) a PostgreSQL server from the
``pgserver`` package in a local data folder, and returns a libpq URI for the
project database on its Unix socket.

Several processes (web, worker, tests, ``manage.py`` commands) may call this
at the same moment: a file lock serialises initialisation and start-up, so the
server is initialised exactly once and then shared. Each process registers
itself in pgserver's handle list; the last registered process to exit stops
the server. Processes that died without unregistering (SIGKILL) are pruned
from that list before a new one registers, so a crash never keeps a stopped
server "in use" nor stops one that is still used.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

DATABASE_NAME = "controlplane"

logger = logging.getLogger(__name__)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prune_dead_handles(data_dir: Path) -> None:
    """Drop pids of processes that exited without unregistering (e.g. SIGKILL)."""
    import psutil
    from pgserver import PostgresServer

    handles = data_dir / ".handle_pids.json"
    with PostgresServer._lock:
        if not handles.exists():
            return
        try:
            pids = json.loads(handles.read_text())
        except ValueError:
            pids = []
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _ensure_database(uri: str, name: str) -> None:
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(uri, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return
        with suppress(errors.DuplicateDatabase):  # another process won the race
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def ensure_running(data_dir: Path, *, database: str = DATABASE_NAME) -> str:
    """Start (or reuse) the embedded server in ``data_dir``; return the project database URI."""
    # pgserver keeps its lock under the user's runtime dir; the fallback to /tmp is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import pgserver

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with _exclusive(data_dir.parent / f".{data_dir.name}.lock"):
        if data_dir.exists():
            _prune_dead_handles(data_dir)
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
        # atexit runs last-registered first: prune before pgserver decides whether
        # this process is the last user and should stop the server.
        atexit.register(_prune_dead_handles, data_dir)
        _ensure_database(server.get_uri(), database)
        return server.get_uri(database)


def stop(data_dir: Path) -> bool:
    """Stop the embedded server regardless of who uses it (drills, operators). True if it ran."""
    from pgserver import pg_ctl
    from pgserver.utils import PostmasterInfo

    data_dir = data_dir.expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    if info is None or not info.is_running():
        return False
    user = "pgserver" if _running_as_root() else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
    _stopped_here(data_dir)
    return True


def _stopped_here(data_dir: Path) -> None:
    """pgserver's exit handler stops the server it started unless told it is done: its
    postmaster, our child, lingers as a zombie that looks alive, so a second stop fails
    and it prints "Failed to stop server, killing it instead" at every drill's exit."""
    from pgserver import PostgresServer

    server = PostgresServer._instances.get(data_dir)
    if server is not None:
        server.cleanup_mode = None


def restart(data_dir: Path) -> None:
    """``pg_ctl restart -m fast``: every connection is cut, the server is back in about a
    second (drills, operators)."""
    from pgserver import pg_ctl

    data_dir = data_dir.expanduser().resolve()
    user = "pgserver" if _running_as_root() else None
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=data_dir, user=user)


def start(data_dir: Path) -> None:
    """Start the embedded server in ``data_dir`` again after :func:`stop` (same socket)."""
    import pgserver
    from pgserver import PostgresServer

    data_dir = data_dir.expanduser().resolve()
    with _exclusive(data_dir.parent / f".{data_dir.name}.lock"):
        server = pgserver.get_server(data_dir, cleanup_mode="stop")  # registers if new
        server.cleanup_mode = "stop"  # running again: stop it at exit, as before stop()
        with PostgresServer._lock:
            server.ensure_postgres_running()


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
