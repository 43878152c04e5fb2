"""django-q2 entry points for jobs (the task itself lives in jobs.runner.run_job)."""

from __future__ import annotations

from dataclasses import asdict

from jobs.maintenance import run_maintenance


def maintenance() -> dict[str, int]:
    return asdict(run_maintenance())
