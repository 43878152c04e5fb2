"""Django's PostgreSQL backend, plus the fail-fast gate of ``controlplane.lib.dbgate``.

``DATABASES["default"]["ENGINE"] = "controlplane.lib.postgres"``. While the listener
knows the database is unreachable, a new connection fails at once (a 503 envelope
for the request) instead of waiting DB_CONNECT_TIMEOUT; every connection opened
here is tracked so that a query stuck on a dead network is cut loose when the
listener notices.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base

from controlplane.lib import dbgate


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        dbgate.check()
        connection = super().get_new_connection(conn_params)
        dbgate.track(connection)
        return connection
