"""A second process with its own lookup cache: python -m tests.lookups.child SLUG SECONDS
[sources]. It prints a line when the answer's UUID changes (with "sources": its source too,
so a cleared cache shows as a read from "db")."""

from __future__ import annotations

import json
import sys
import time

import django

django.setup()

from controlplane.lib import notifications  # noqa: E402
from lookups import resolver, stats, warming  # noqa: E402

slug, seconds = sys.argv[1], float(sys.argv[2])
sources = sys.argv[3:] == ["sources"]
lookups = resolver.get_lookups()
lookups.listen()
deadline = time.time() + 10
while not notifications.listener.is_listening(warming.CHANNEL) and time.time() < deadline:
    time.sleep(0.01)
first = lookups.lookup(slug)
print(
    json.dumps({"uuid": str(first.uuid), "source": first.source, "process": stats.process_name()}),
    flush=True,
)
last = (first.uuid, first.source if sources else None)
end = time.time() + seconds
while time.time() < end:
    result = lookups.lookup(slug)
    if (result.uuid, result.source if sources else None) != last:
        last = (result.uuid, result.source if sources else None)
        print(
            json.dumps({"uuid": str(result.uuid), "source": result.source, "at": time.time()}),
            flush=True,
        )
    time.sleep(0.002)
print(json.dumps({"done": True, "hits": lookups.metrics.raw()["counters"]["hits"]}), flush=True)
