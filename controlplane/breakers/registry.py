"""Every breaker runtime of this process, kept coherent with the database over NOTIFY."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings

from controlplane.breakers import sql
from controlplane.breakers.runtime import BreakerRuntime
from controlplane.lib import sidedb
from controlplane.lib.notifications import CacheGuard

logger = logging.getLogger("controlplane.breakers")


class Registry:
    """Every breaker runtime of this process, invalidated over NOTIFY.

    Also the process's view of the database: once a statement fails, runtimes decide
    from local state and try the database again at most once a second (``degraded``).
    """

    def __init__(self) -> None:
        self.runtimes: dict[str, BreakerRuntime] = {}
        self.lock = threading.Lock()
        self.side = sidedb.SideConnection(
            lambda: sidedb.default_conninfo(
                application_name="controlplane-breakers",
                connect_timeout=settings.BREAKER_DB_CONNECT_TIMEOUT,
                statement_timeout_ms=5000,
            )
        )
        self.guard = CacheGuard(sql.CHANNEL, on_change=self._drop, on_reset=self._drop_all)
        self.degraded = False
        self.retry_database_at = 0.0
        self.counters: dict[tuple[str, str], int] = {}

    def get(self, name: str, config: dict[str, Any] | None = None) -> BreakerRuntime:
        runtime = self.runtimes.get(name)
        if runtime is None:
            with self.lock:
                runtime = self.runtimes.get(name)
                if runtime is None:
                    runtime = BreakerRuntime(name=name, registry=self, config=dict(config or {}))
                    self.runtimes[name] = runtime
            self.guard.listen()
        return runtime

    def invalidate(self, name: str) -> None:
        """``name`` changed (this process's own override, before its NOTIFY arrives)."""
        self.guard.invalidate(name)

    def _drop(self, name: str) -> None:
        runtime = self.runtimes.get(name)
        if runtime is not None:
            runtime.snapshot = None

    def _drop_all(self) -> None:
        for runtime in list(self.runtimes.values()):
            runtime.snapshot = None

    def may_try_database(self) -> bool:
        return not self.degraded or time.monotonic() >= self.retry_database_at

    def database_failed(self, exc: Exception) -> None:
        if not self.degraded:
            logger.error("breakers: database unreachable, deciding from local state (%s)", exc)
        self.degraded = True
        self.retry_database_at = time.monotonic() + 1.0
        self.count("database_errors", "")

    def database_ok(self) -> None:
        if self.degraded:
            logger.warning("breakers: database reachable again")
        self.degraded = False

    def count(self, metric: str, name: str) -> None:
        key = (metric, name)
        self.counters[key] = self.counters.get(key, 0) + 1


registry = Registry()
