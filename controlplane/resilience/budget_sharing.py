"""Shares the retry-budget counts of a process that went quiet.

A budget syncs inside a call (``RetryBudget.sync_if_due``), so a process whose calls stop
would keep its last counts until they fell out of the window, and the other processes
would decide without them. One daemon thread per process syncs, every
RETRY_BUDGET_SYNC_SECONDS, each budget holding counts unsynced for that long. It starts
with the first count (again in a forked child, where the parent's thread does not exist),
never makes a caller wait (a sync already running in a caller's thread wins and the
thread passes), and holds no connection between the passes that had something to share.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from django.conf import settings

logger = logging.getLogger("controlplane.retry")


class Shareable(Protocol):
    def sync_if_idle(self) -> bool: ...

    def close_connection(self) -> None: ...


class IdleSharing:
    def __init__(self, budgets: Callable[[], Iterable[Shareable]]) -> None:
        self.budgets = budgets  # this process's budgets, read on each pass
        self._forget_thread()
        os.register_at_fork(after_in_child=self._forget_thread)

    def _forget_thread(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        if self.thread is not None:
            return
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="retry-budget-sharing", daemon=True
                )
                self.thread.start()

    def share(self) -> int:
        """One pass: sync every budget whose counts waited a sync interval; how many did."""
        synced = []
        for budget in list(self.budgets()):
            try:
                if budget.sync_if_idle():
                    synced.append(budget)
            except Exception:  # the thread must outlive one bad pass
                logger.exception("retry budget sharing failed")
        for budget in synced:
            budget.close_connection()  # this thread's: nothing to share until the next quiet
        return len(synced)

    def _run(self) -> None:
        while True:
            time.sleep(settings.RETRY_BUDGET_SYNC_SECONDS)
            self.share()
