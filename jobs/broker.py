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
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections
from django_q.brokers.orm import ORM
from django_q.conf import Conf

from controlplane.lib import dbgate
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
        try:
            return super().dequeue()
        except DATABASE_AWAY as exc:
            logger.warning("job queue unreachable (%s); polling again", type(exc).__name__)
            connections[Conf.ORM].close()
            dbgate.wait_before_retry(Conf.POLL, most=1.0)
            return []
