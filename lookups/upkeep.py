"""Periodic lookup work in every process that holds a cache: the expiry sweep and the stats
flush.

The cache lives in each web and worker process, so a django-q2 schedule (one worker runs
it) cannot sweep it: each process runs a daemon thread of its own, started with the
listener (``Lookups.listen``) and restarted in a forked child. Expired entries are dropped
every LOOKUP_SWEEP_SECONDS (they are also dropped when read, but an entry never read again
would otherwise stay until evicted); the stats and per-slug figures are flushed every
LOOKUP_STATS_FLUSH_SECONDS, so an idle process's last minutes still reach the windows.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection

logger = logging.getLogger("controlplane.lookups")
# The thread wakes at least this often, so a changed interval takes effect soon.
MAX_WAIT_SECONDS = 1.0


class Upkeep:
    def __init__(
        self,
        *,
        sweep: Callable[[], int],
        flush: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sweep = sweep
        self.flush = flush
        self.clock = clock
        self.last_sweep = self.last_flush = clock()
        self.swept = 0  # entries dropped by sweeps, for tests and logs
        self.pid = 0
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def tick(self) -> float:
        """Run what is due now; the seconds until something is due again."""
        now = self.clock()
        if now - self.last_sweep >= settings.LOOKUP_SWEEP_SECONDS:
            self.last_sweep = now
            dropped = self.sweep()
            self.swept += dropped
            if dropped:
                logger.debug("lookup cache sweep dropped %d expired entries", dropped)
        if now - self.last_flush >= settings.LOOKUP_STATS_FLUSH_SECONDS:
            self.last_flush = now
            self.flush()
        return max(
            0.0,
            min(
                self.last_sweep + settings.LOOKUP_SWEEP_SECONDS,
                self.last_flush + settings.LOOKUP_STATS_FLUSH_SECONDS,
            )
            - self.clock(),
        )

    def start(self) -> None:
        """Run ``tick`` in a daemon thread of this process (again after a fork)."""
        if self.pid == os.getpid() and self.thread is not None and self.thread.is_alive():
            return
        if self.pid != os.getpid():
            self.lock = threading.Lock()  # a forked child: the parent's may have been held
        with self.lock:
            if self.pid == os.getpid() and self.thread is not None and self.thread.is_alive():
                return
            self.pid = os.getpid()
            self.stopping = threading.Event()
            self.thread = threading.Thread(
                target=self._run, args=(self.stopping,), name="lookups-upkeep", daemon=True
            )
            self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.thread = None

    def _run(self, stopping: threading.Event) -> None:
        wait = 0.0
        while not stopping.wait(min(max(wait, 0.05), MAX_WAIT_SECONDS)):
            try:
                wait = self.tick()
            except Exception:  # the thread must outlive a bad flush
                logger.exception("lookup upkeep failed")
                wait = MAX_WAIT_SECONDS
            finally:
                connection.close()  # no idle connection held between flushes
