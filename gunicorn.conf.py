"""gunicorn settings, read from the working directory by every gunicorn started here
(`make run` passes this file explicitly).

gunicorn answers a request line longer than `limit_request_line` itself, with an
HTML 414 that never reaches Django (so no error envelope, no support_id). The
default, 4,094 bytes, is less than a schema-valid /api/v1/errors/ query whose
filters hold non-ASCII text (each character percent-encodes to up to 12 bytes);
the fuzz drill sent one. 8,190 is gunicorn's maximum. Put the same or a lower
limit on the proxy in front, so the proxy refuses first.
"""

from __future__ import annotations

from typing import Any

from controlplane.lib.env import env_int

limit_request_line = 8190

# Threads: a request that meets a database gone silent waits until the listener notices
# (DB_PING_SECONDS + DB_PING_TIMEOUT, ~4 s) and cuts it loose; meanwhile it holds one
# thread, not the whole worker, so health and cache hits go on answering.
worker_class = "gthread"
threads = env_int("GUNICORN_THREADS", 4, minimum=1)

# How long a fresh worker waits for its change listener before taking requests.
LISTEN_WAIT_SECONDS = 3.0


def post_fork(server: Any, worker: Any) -> None:
    """With ``preload_app`` the project was loaded before the fork: the span exporter (a
    thread and a connection) is started here, in the worker. Without it, the wsgi module
    starts it when the worker imports the project."""
    from controlplane.lib import tracing

    tracing.start_export()


def post_worker_init(worker: Any) -> None:
    """Before a worker's first request: listen for changes to the per-process caches, so
    they serve hits from the start (and not only once a request happened to start the
    listener). The database down at boot delays the worker by LISTEN_WAIT_SECONDS only."""
    from controlplane.startup import listen_for_changes

    if not listen_for_changes(LISTEN_WAIT_SECONDS):
        worker.log.warning(
            "not listening for cache invalidations yet (database unreachable?); "
            "caches are bypassed until the listener connects"
        )
