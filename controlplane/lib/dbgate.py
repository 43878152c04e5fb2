"""Is PostgreSQL reachable from this process? If not, fail fast instead of waiting.

The notification listener (``controlplane.lib.notifications``) holds one connection
per process and pings it every second with a deadline, so it is the first to know
when the database went away: a restart or failover closes its connection, a
network that drops packets (a blackhole) leaves its ping unanswered. It then calls
:func:`mark_unreachable`, which

- shuts down the socket of every connection this process opened (Django's, through
  ``controlplane.lib.postgres``, and the side connections): a query stuck on a dead
  network returns at once instead of after TCP's ~15 minutes of retransmissions;
- makes every new connection attempt fail at once (:func:`check`) instead of each
  request waiting for the connect timeout.

The listener retries every half second and calls :func:`mark_reachable` as soon as
it is connected again. A process whose listener does not run never marks the
database unreachable, so it connects as usual: the gate only speeds up failures
that the listener has already seen.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref

import psycopg

logger = logging.getLogger(__name__)


class DatabaseUnreachable(psycopg.OperationalError):
    """Raised instead of connecting while the listener knows the database is away."""


class _Gate:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reachable = threading.Event()
        self.reachable.set()
        self.down_since: float | None = None
        self.reason = ""
        self.tracked: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()


_gate = _Gate()


def _after_fork() -> None:
    # The child's listener starts afresh; until it says otherwise, try to connect.
    global _gate
    _gate = _Gate()


os.register_at_fork(after_in_child=_after_fork)


def is_unreachable() -> bool:
    return not _gate.reachable.is_set()


def unreachable_for() -> float | None:
    """Seconds since the database was last seen going away, or None while it is reachable."""
    since = _gate.down_since
    return None if since is None else round(time.monotonic() - since, 3)


def check() -> None:
    """Refuse a new connection while the database is known to be unreachable."""
    if not _gate.reachable.is_set():
        raise DatabaseUnreachable(
            f"database unreachable for {unreachable_for() or 0:.1f} s ({_gate.reason}); "
            "not connecting until the listener reconnects"
        )


def wait_before_retry(pause: float, *, most: float) -> None:
    """Between two tries of something the database refused: while the listener knows it is
    away, until it reconnects (at most ``most`` seconds); otherwise a plain ``pause``."""
    if is_unreachable():
        _gate.reachable.wait(most)
    else:
        time.sleep(pause)


def track(conn: psycopg.Connection) -> None:
    """Remember a connection (weakly) so that :func:`mark_unreachable` can cut it loose."""
    gate = _gate
    with gate.lock:
        gate.tracked.add(conn)


# A server that answers FATAL to a new connection is there, unless it says it is not ready.
_NOT_READY = ("shutting down", "starting up", "in recovery", "not yet accepting connections")


def means_unreachable(exc: Exception) -> bool:
    """True for no answer, a lost connection, or a server shutting down or starting up.
    A server that answered with a refusal (too many connections, a bad password, no such
    database) is reachable, and the process's other connections may be working: they must
    not be cut. psycopg gives connection failures no SQLSTATE, so their text decides."""
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if not isinstance(exc, psycopg.Error):
        cause = exc.__cause__
        return isinstance(cause, psycopg.Error) and means_unreachable(cause)
    state = exc.sqlstate
    if state is not None:
        return state.startswith(("08", "57P"))
    text = str(exc)
    if "FATAL:" in text:
        return any(phrase in text for phrase in _NOT_READY)
    return True


def mark_unreachable(reason: str) -> None:
    gate = _gate
    with gate.lock:
        first = gate.reachable.is_set()
        if first:
            gate.down_since = time.monotonic()
            gate.reason = reason
            gate.reachable.clear()
        tracked = list(gate.tracked)
    if first:
        logger.warning("database unreachable (%s): failing fast until it answers again", reason)
    for conn in tracked:
        shutdown(conn)


def mark_reachable() -> None:
    gate = _gate
    with gate.lock:
        if gate.reachable.is_set():
            return
        away = time.monotonic() - (gate.down_since or time.monotonic())
        gate.down_since = None
        gate.reason = ""
        gate.reachable.set()
    logger.warning("database reachable again after %.1f s", away)


def shutdown(conn: psycopg.Connection) -> None:
    """Shut down the socket under a connection without closing its file descriptor: a thread
    blocked on it wakes up with an error, and the connection's owner closes it as usual."""
    if conn.closed:
        return
    try:
        fd = conn.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass  # already closed or never connected
