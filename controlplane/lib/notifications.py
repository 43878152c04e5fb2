"""Cross-process invalidation over PostgreSQL LISTEN/NOTIFY.

One daemon thread per process holds a dedicated connection listening on the
channels that callbacks subscribed to, and pings it every DB_PING_SECONDS; a
watchdog cuts the connection when a statement on it gets no answer within
DB_PING_TIMEOUT (a network that drops packets). When the connection is lost,
caches stop being trusted: a subscriber with ``on_lost`` keeps what it holds for
stale answers (correct as of ``Listener.delivered_until``), the others' ``on_reset``
runs; the process's database gate fails fast (``controlplane.lib.dbgate``) and the
thread reconnects every half second. A fresh LISTEN resets every subscriber, so
nothing kept through an outage outlives the reconnection. Started lazily, and again
in a forked child (the parent's thread does not survive fork).

:class:`CacheGuard` is how a per-process cache uses it (API tokens, lookups,
breaker snapshots): subscribe once, trust the cache only while listening, and
never cache a value read while an invalidation of it arrived.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from psycopg import sql

from controlplane.lib import dbgate, sidedb

logger = logging.getLogger(__name__)
RECONNECT_SECONDS = 0.5


@dataclass
class _Subscription:
    on_message: Callable[[str], None]
    on_reset: Callable[[], None]
    on_lost: Callable[[float], None] | None = None


@dataclass
class Listener:
    subscriptions: dict[str, list[_Subscription]] = field(default_factory=dict)
    connected: threading.Event = field(default_factory=threading.Event)
    pid: int = 0
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    listening: set[str] = field(default_factory=set)
    atexit_registered: bool = False
    connect_callbacks: list[Callable[[], None]] = field(default_factory=list)
    conn: psycopg.Connection | None = None
    busy_since: float | None = None
    generation: int = 0
    # time.monotonic() before which every committed change has been delivered to the
    # subscribers (None: not known). Moved forward only by a round trip, see _run.
    delivered_until: float | None = None

    def on_connected(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` in the listener thread after every (re)connection: the
        database is reachable again. It must return quickly (start a thread for real work)."""
        if callback not in self.connect_callbacks:
            self.connect_callbacks.append(callback)

    def subscribe(
        self,
        channel: str,
        on_message: Callable[[str], None],
        on_reset: Callable[[], None],
        on_lost: Callable[[float], None] | None = None,
    ) -> None:
        """``on_lost(delivered_until)``, when given, runs instead of ``on_reset`` when the
        connection is lost while ``delivered_until`` is known."""
        subscription = _Subscription(on_message, on_reset, on_lost)
        with self.lock:
            self.subscriptions.setdefault(channel, []).append(subscription)
        self.ensure_running()

    def unsubscribe(self, channel: str, on_message: Callable[[str], None]) -> None:
        with self.lock:
            self.subscriptions[channel] = [
                sub for sub in self.subscriptions.get(channel, []) if sub.on_message != on_message
            ]

    def ensure_running(self) -> None:
        if self.pid == os.getpid() and self.thread is not None and self.thread.is_alive():
            return
        with self.lock:
            if self.pid == os.getpid() and self.thread is not None and self.thread.is_alive():
                return
            self.pid = os.getpid()
            self.generation += 1
            self.connected.clear()
            self.listening = set()
            self.thread = threading.Thread(
                target=self._run,
                args=(self.generation,),
                name="controlplane-listener",
                daemon=True,
            )
            self.thread.start()
            if not self.atexit_registered:  # stop before the embedded server does
                atexit.register(self.stop)
                self.atexit_registered = True

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening (tests, before the test database is dropped)."""
        thread = self.thread
        self.pid = -1
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        self.thread = None
        dbgate.mark_reachable()  # nobody watches the database any more: connect as usual

    def _reset_all(self) -> None:
        for subs in list(self.subscriptions.values()):
            for sub in subs:
                sub.on_reset()

    def _lose_all(self) -> None:
        """The connection is gone (or a reconnection failed again): subscribers that serve
        stale answers keep what they hold, as correct up to ``delivered_until``; the
        others start over."""
        until = self.delivered_until
        for subs in list(self.subscriptions.values()):
            for sub in subs:
                if sub.on_lost is not None and until is not None:
                    sub.on_lost(until)
                else:
                    sub.on_reset()

    def _run(self, generation: int) -> None:
        my_pid = os.getpid()

        def mine() -> bool:  # a thread that outlived stop() must not run beside its successor
            return self.pid == my_pid and self.generation == generation

        watchdog = threading.Thread(
            target=self._watch,
            args=(threading.current_thread(),),
            name="listener-watchdog",
            daemon=True,
        )
        watchdog.start()
        connected_at = 0.0
        while mine():
            try:
                info = sidedb.default_conninfo(
                    application_name="controlplane-listener",
                    connect_timeout=2,
                    statement_timeout_ms=5000,
                )
                if not str(info.get("host", "")).startswith("/"):  # TCP: let the kernel help
                    info.update(
                        keepalives=1,
                        keepalives_idle=5,
                        keepalives_interval=2,
                        keepalives_count=3,
                        tcp_user_timeout=10_000,
                    )
                with psycopg.connect(**info, autocommit=True) as conn:
                    self.conn = conn
                    self.listening = set()
                    listened_at = time.monotonic()
                    self._guarded(lambda: self._listen_new(conn))
                    # Anything changed before LISTEN took effect is unknown: start fresh
                    # (this also ends what was kept for stale answers during an outage).
                    self._reset_all()
                    self.delivered_until = listened_at
                    self.connected.set()
                    connected_at = time.monotonic()
                    dbgate.mark_reachable()
                    self._announce_connected()
                    last_ping = time.monotonic()
                    while mine():
                        self._guarded(lambda: self._listen_new(conn))
                        pinged_at = None
                        if time.monotonic() - last_ping >= settings.DB_PING_SECONDS:
                            # A connection can die without a word (a NAT, a failover, a
                            # network that drops packets): a round trip with a deadline
                            # (the watchdog's) finds out.
                            pinged_at = time.monotonic()
                            self._guarded(lambda: conn.execute("SELECT 1"))
                            last_ping = time.monotonic()
                        for note in conn.notifies(timeout=0.25, stop_after=100):
                            for sub in list(self.subscriptions.get(note.channel, ())):
                                sub.on_message(note.payload)
                        if pinged_at is not None:
                            # PostgreSQL sends an idle listening session its pending
                            # notifications before it answers the session's next query, so
                            # a change committed before the ping was sent arrived ahead of
                            # the answer (psycopg keeps it for notifies(), which has just
                            # handed it on). Only a round trip proves this: a notification
                            # says nothing of changes committed after it.
                            self.delivered_until = pinged_at
            except psycopg.Error as exc:
                was_connected = self.connected.is_set()
                self.connected.clear()
                self._lose_all()
                if not mine():
                    continue
                if was_connected:
                    # One lost connection is not an outage (its backend may have been
                    # terminated alone, or this process stalled past the ping's deadline):
                    # reconnect at once, and close the gate only if that fails too.
                    logger.warning("notification listener lost its connection: %s", exc)
                    if time.monotonic() - connected_at < RECONNECT_SECONDS:
                        time.sleep(RECONNECT_SECONDS)  # dropped as soon as made: no busy loop
                    continue
                if dbgate.means_unreachable(exc):
                    dbgate.mark_unreachable(f"listener: {type(exc).__name__}")
                time.sleep(RECONNECT_SECONDS)
            except Exception:  # a buggy callback must not kill invalidation
                logger.exception("notification listener callback failed")
                self.connected.clear()
                self.delivered_until = None  # a change may have been half handled
                self._reset_all()
                time.sleep(0.2)
            finally:
                self.conn = None

    def _guarded(self, work: Callable[[], object]) -> None:
        """Run a statement on the listener's connection under the watchdog's deadline."""
        self.busy_since = time.monotonic()
        try:
            work()
        finally:
            self.busy_since = None

    def _watch(self, listener_thread: threading.Thread) -> None:
        """Cut the listener's connection when a statement on it outlives DB_PING_TIMEOUT:
        the network under it may be gone, whatever TCP still believes. The listener then
        reconnects at once, and only if that fails too is the database unreachable."""
        while listener_thread.is_alive():
            time.sleep(0.1)
            try:
                since = self.busy_since
                if since is not None and time.monotonic() - since > settings.DB_PING_TIMEOUT:
                    self.busy_since = None
                    logger.warning(
                        "no answer from the database within %s s; reconnecting",
                        settings.DB_PING_TIMEOUT,
                    )
                    conn = self.conn
                    if conn is not None:
                        dbgate.shutdown(conn)
            except Exception:  # the watchdog must outlive anything
                logger.exception("listener watchdog failed")

    def _announce_connected(self) -> None:
        for callback in list(self.connect_callbacks):
            try:
                callback()
            except Exception:
                logger.exception("a listener on_connected callback failed")

    def _listen_new(self, conn: psycopg.Connection) -> None:
        for channel in list(self.subscriptions):
            if channel not in self.listening:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                self.listening.add(channel)
                # Changes made before LISTEN took effect were missed: start that cache fresh.
                for sub in list(self.subscriptions[channel]):
                    sub.on_reset()

    def is_listening(self, channel: str) -> bool:
        """True while changes on ``channel`` are being delivered to this process.

        Cheap enough for every cache hit; a forked child starts with nothing listening
        (``_after_fork``), so it never trusts what its parent was told.
        """
        return channel in self.listening and self.connected.is_set()

    def _after_fork(self) -> None:
        self.conn = None
        self.busy_since = None
        self.delivered_until = None  # nothing the parent was told counts here
        self.connected = threading.Event()
        self.listening = set()
        self.thread = None
        self.lock = threading.Lock()


listener = Listener()
os.register_at_fork(after_in_child=listener._after_fork)


def subscribe(
    channel: str, on_message: Callable[[str], None], on_reset: Callable[[], None]
) -> None:
    listener.subscribe(channel, on_message, on_reset)


EVERYTHING = "*"  # a payload that invalidates every key (e.g. after TRUNCATE)


class CacheGuard:
    """A per-process cache's link to one NOTIFY channel.

    Each payload names the key that changed (or ``*``: everything). The guard counts
    the change first, then calls ``on_change(key)`` / ``on_reset()`` so the cache drops
    it; a fresh LISTEN resets everything, and so does losing the connection, unless the
    cache gave ``on_lost``: then ``on_lost(delivered_until)`` lets it keep what it holds
    for stale answers (``controlplane.lib.stale``) until the next reset.

    A reader takes ``stamp(key)`` before reading the database and caches what it read
    only if the stamp is the same afterwards: an invalidation that arrived during the
    read may describe a change the read missed. ``stamp()`` without a key moves on any
    change (for caches that learn their key only from the read, like API tokens).
    """

    def __init__(
        self,
        channel: str,
        *,
        on_change: Callable[[str], None],
        on_reset: Callable[[], None],
        on_lost: Callable[[float], None] | None = None,
    ) -> None:
        self.channel = channel
        self.on_change = on_change
        self.on_reset = on_reset
        self.on_lost = on_lost
        self.resets = 0
        self.changes = 0
        self.versions: dict[str, int] = {}
        self.subscribed = False
        self.lock = threading.Lock()

    def listen(self) -> None:
        """Subscribe on first use; afterwards make sure the listener runs (e.g. after fork)."""
        if self.subscribed:
            listener.ensure_running()
            return
        with self.lock:
            if not self.subscribed:
                lost = self.lost if self.on_lost is not None else None
                listener.subscribe(self.channel, self.invalidate, self.reset, lost)
                self.subscribed = True

    def close(self) -> None:
        """Stop receiving this channel (the cache is being replaced)."""
        listener.unsubscribe(self.channel, self.invalidate)
        self.subscribed = False

    def trusted(self) -> bool:
        """True while changes are delivered to this process, so cached values hold."""
        return listener.is_listening(self.channel)

    def stamp(self, key: str | None = None) -> tuple[int, int]:
        return self.resets, self.changes if key is None else self.versions.get(key, 0)

    def invalidate(self, key: str) -> None:
        """``key`` changed (a NOTIFY, or this process's own write)."""
        if key == EVERYTHING:
            self.reset()
            return
        self.versions[key] = self.versions.get(key, 0) + 1
        self.changes += 1
        self.on_change(key)

    def reset(self) -> None:
        self.resets += 1
        self.on_reset()

    def lost(self, delivered_until: float) -> None:
        """The listener lost its connection: nothing read meanwhile may be cached (the
        stamp moves), and the cache keeps what it holds as correct up to then."""
        self.resets += 1
        if self.on_lost is not None:
            self.on_lost(delivered_until)
        else:
            self.on_reset()
