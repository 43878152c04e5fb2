"""Child process for the last-good-at-exit test: a call to provider group GROUP whose answer
the group keeps (``last_good`` fallback), made just before a django-q2 worker ends cleanly.

    python -m tests.resilience.last_good_child GROUP WRITER_DATABASE_URL

A django-q2 worker process (django_q.worker.worker, forked as the cluster's sentinel forks
it) takes one task that calls the group, then STOP, and ends.

The writer alone reaches the database through WRITER_DATABASE_URL (the parent's proxy, hung
until this worker's exit waits for the writer, or the worker is gone), so only an exit that
waits for the writer stores the answer. Nothing else here waits for it. Prints what
happened as JSON.
"""

from __future__ import annotations

import json
import sys

import django

django.setup()

from django.db import connections  # noqa: E402
from django_q.cluster import get_mp_context  # noqa: E402
from django_q.worker import worker  # noqa: E402

from controlplane.lib import sidedb  # noqa: E402
from controlplane.resilience import last_good  # noqa: E402
from controlplane.resilience.failover import client_for_group  # noqa: E402


def call_group(group: str) -> int:
    return client_for_group(group).get("/v1/models").response.status_code


def in_a_worker(group: str) -> dict[str, object]:
    context = get_mp_context()
    tasks, results = context.Queue(), context.Queue()
    task = {"id": "t1", "name": "last-good", "func": call_group, "args": (group,), "kwargs": {}}
    tasks.put(task)
    tasks.put("STOP")  # what the cluster's stop sends each worker
    connections.close_all()  # as the sentinel does before it forks
    process = context.Process(target=worker, args=(tasks, results, context.Value("f", -1), 60))
    process.start()
    result = results.get(timeout=30)
    process.join(30)
    return {"result": result["result"], "success": result["success"], "exit": process.exitcode}


if __name__ == "__main__":
    group, writer_url = sys.argv[1:3]
    last_good.writer.side = sidedb.SideConnection(
        lambda: {"conninfo": writer_url, "connect_timeout": 20, "application_name": "last-good"}
    )
    print(json.dumps(in_a_worker(group)), flush=True)
