"""django-q2's ORM broker, riding out a database restart.

On any error from ``dequeue`` django-q2's pusher sleeps 10 s and exits, and the
sentinel starts a new one: every database blip stalled dispatch for ~10 s.
Here a dequeue that meets the database away drops the broken connection and
reports an empty queue until the database answers again, so the pusher keeps
polling and the first job after a restart is picked up within a poll tick.

The sentinel saves the cluster's status (what ``qinfo`` and the health check's
"workers" read) twice a second and never re-checks its connection: after a
restart every save failed, and the cluster looked dead. A failed save now drops
the connection, so the next one reconnects.

An empty queue no longer means a blind sleep of the poll interval: the pusher waits on the
wake-up a NOTIFY sets (``jobs.wakeups``), at most Q_POLL seconds, so a new task starts at
once and polling stays the safety net. Which pusher takes a task is still django-q2's
conditional UPDATE of the row's lock.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

from controlplane.lib import dbgate
from jobs import wakeups
from jobs.lifecycle import DATABASE_AWAY

logger = logging.getLogger("controlplane.jobs")


class ResilientORM(ORM):
    def set_stat(self, key: str, value: Any, timeout: int) -> None:
        try:
            super().set_stat(key, value, timeout)
        except DATABASE_AWAY:
            connections[Conf.ORM].close()
            raise  # Stat.save logs it; the next save reconnects

    def dequeue(self) -> Any:
        wakeup = wakeups.dispatch_wakeup()
        # Cleared before the query: a task committed after the query looked still wakes the
        # wait below (its NOTIFY comes after its commit).
        wakeup.clear()
        try:
            tasks = self._take_ready()
        except DATABASE_AWAY as exc:
            logger.warning("job queue unreachable (%s); polling again", type(exc).__name__)
            connections[Conf.ORM].close()
            dbgate.wait_before_retry(Conf.POLL, most=1.0)
            return []
        if tasks:
            return tasks
        wakeup.wait(Conf.POLL)  # django-q2 sleeps Conf.POLL here; a NOTIFY ends this early
        return []

    def _take_ready(self) -> list[tuple[int, str]]:
        """django-q2's ORM.dequeue without its sleep: each ready task is taken by moving its
        lock forward from the value read, so of several pushers exactly one takes it."""
        tasks = self.get_connection().filter(key=self.list_key, lock__lt=timezone.now())[
            0 : Conf.BULK
        ]
        taken = []
        for task in tasks:
            if (
                self.get_connection()
                .filter(id=task.id, lock=task.lock)
                .update(lock=self.timeout(task))
            ):
                taken.append((task.pk, task.payload))
        return taken
