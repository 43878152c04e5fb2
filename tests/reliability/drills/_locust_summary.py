"""The load drill's final locust stats, written once every user has stopped.

Locust's CSV files are periodic snapshots that can miss the last second, so at exit the
locustfile writes ``LOAD_SUMMARY_FILE`` as JSON: overall and per request name, the count,
failures, req/s, p50/p95/p99/max in ms; every failure message with its count; the
exceptions raised in tasks; the exit code. Importing this module registers the listeners.
"""

from __future__ import annotations

import json
import os
from typing import Any

from locust import events

_environment: Any = None


@events.init.add_listener
def _remember(environment: Any, **_: Any) -> None:
    global _environment
    _environment = environment


def _entry(entry: Any) -> dict[str, Any]:
    return {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "req_per_s": round(entry.total_rps, 2),
        "p50_ms": entry.get_response_time_percentile(0.50) if entry.num_requests else None,
        "p95_ms": entry.get_response_time_percentile(0.95) if entry.num_requests else None,
        "p99_ms": entry.get_response_time_percentile(0.99) if entry.num_requests else None,
        "max_ms": round(entry.max_response_time, 1) if entry.num_requests else None,
    }


@events.quit.add_listener
def _summarise(exit_code: int, **_: Any) -> None:
    """Write the final stats once every user has stopped (see the module docstring)."""
    path = os.environ.get("LOAD_SUMMARY_FILE")
    if not path or _environment is None or _environment.runner is None:
        return
    stats = _environment.runner.stats
    summary = {
        "exit_code": exit_code,
        "total": _entry(stats.total),
        "endpoints": {entry.name: _entry(entry) for entry in stats.entries.values()},
        "failures": [
            {"name": error.name, "message": str(error.error), "count": error.occurrences}
            for error in stats.errors.values()
        ],
        "exceptions": [
            {"message": str(found["msg"])[:300], "count": found["count"]}
            for found in _environment.runner.exceptions.values()
        ],
    }
    with open(path, "w") as handle:
        json.dump(summary, handle, indent=2)
