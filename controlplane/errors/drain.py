"""Drain this machine's error spool in the background as soon as the database is back.

Two signals start a drain at once, in a daemon thread of the process that sees them:

- the notification listener (re)connected, so the database is reachable again
  (``listener.on_connected``, registered in ``ErrorsConfig.ready``; a process that spools
  a row makes sure its listener runs: :func:`spooled`);
- an error record was written while this machine's spool holds rows (:func:`written`,
  looked at once a second at most, with ``stat`` only).

The drain replays until the spool is empty. While the database still refuses (the
listener may reconnect a moment before side connections succeed) it retries with backoff,
for up to ``PATIENCE_SECONDS`` after the last signal; the worker's one-minute schedule and
``manage.py replay_error_spool`` remain the safety net. Replays are one at a time per
machine (``Spool.replaying``): a drain that finds another process replaying waits and
looks again. No request replays anything itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Literal

from controlplane.errors import spool, store
from controlplane.lib.notifications import listener

logger = logging.getLogger(__name__)

PATIENCE_SECONDS = 60.0
# First and longest wait while the database still refuses. Short: a side connection may
# fail fast for a moment after the listener reconnects, and a try that fails is cheap.
RETRY_SECONDS = (0.2, 1.0)
BUSY_SECONDS = 0.5  # another process replays this spool: look again after this
CHECK_AFTER_WRITE_SECONDS = 1.0
written_checked_at = 0.0


class Drainer:
    """At most one drain thread per process."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.files: spool.Spool | None = None
        self.until = 0.0

    def kick(self, files: spool.Spool | None = None) -> bool:
        """Drain ``files`` (this machine's spool) in the background if it holds rows.
        True if a drain is running."""
        files = files or spool.current()
        if not files.backlog().bytes:
            return False
        with self.lock:
            self.files, self.until = files, time.monotonic() + PATIENCE_SECONDS
            self.wake.set()
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="controlplane-spool-drain", daemon=True
                )
                self.thread.start()
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no drain runs (tests, shutdown); True if none does."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        return self.thread is None

    def _run(self) -> None:
        retry = RETRY_SECONDS[0]
        try:
            while True:
                self.wake.clear()
                outcome = _replay_once(self.files or spool.current())
                with self.lock:
                    drained = outcome == "drained" and not self.wake.is_set()
                    if drained or time.monotonic() > self.until:
                        self.thread = None
                        return
                if outcome == "refused":
                    self.wake.wait(retry)  # a new signal cuts the wait short
                    retry = min(retry * 2, RETRY_SECONDS[1])
                else:
                    retry = RETRY_SECONDS[0]
                    if outcome == "busy":
                        self.wake.wait(BUSY_SECONDS)
        finally:
            store.get_store().side.close()  # this thread's connection


def _replay_once(files: spool.Spool) -> Literal["drained", "more", "busy", "refused"]:
    """Replay ``files`` once: drained, more rows spooled meanwhile, another process
    replaying, or the database (or the disk) refused."""
    try:
        result = store.replay_spool(files=files)
    except Exception:  # a broken file or folder: logged, tried again later
        logger.exception("background error spool drain failed")
        return "refused"
    if result.busy:
        return "busy"
    if result.stopped:
        return "refused"
    if result.inserted or result.duplicates or result.rejected or result.corrupt:
        logger.info(
            "error spool drained: %d written, %d already there, %d rejected, %d corrupt",
            result.inserted,
            result.duplicates,
            result.rejected,
            result.corrupt,
        )
    return "more" if files.backlog().bytes else "drained"


drainer = Drainer()
os.register_at_fork(after_in_child=drainer._reset)  # the parent's thread is not ours


def on_database_connected() -> None:
    """The listener (re)connected: the database is back (runs in the listener's thread)."""
    drainer.kick()


def spooled() -> None:
    """A row was spooled: make sure this process hears when the database is back."""
    listener.on_connected(on_database_connected)
    listener.ensure_running()


def written() -> None:
    """A record was written: the database takes rows; drain the spool if it holds any."""
    global written_checked_at
    now = time.monotonic()
    if now - written_checked_at < CHECK_AFTER_WRITE_SECONDS:
        return
    written_checked_at = now
    drainer.kick()
