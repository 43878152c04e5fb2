"""Shared set-up for benchmarks: a dedicated database on the same server, Django configured."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
# The repository goes first: bench/jobs.py and bench/lookups.py must not shadow the apps.
sys.path.insert(0, str(REPO))


def setup_bench_database(name: str) -> str:
    """Create (if needed) database ``name`` next to the app's and point Django at it."""
    import psycopg
    from psycopg import errors, sql

    from controlplane.lib import embedded_db
    from controlplane.lib.env import parse_database_url

    base_url = os.environ.get("DATABASE_URL") or embedded_db.ensure_running(
        Path(os.environ.get("EMBEDDED_PG_DIR", REPO / "var" / "pgdata"))
    )
    db = parse_database_url(base_url)
    admin = psycopg.connect(
        dbname="postgres",
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        autocommit=True,
    )
    with suppress(errors.DuplicateDatabase):
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()
    auth = f"{quote(db['USER'])}:{quote(db['PASSWORD'])}@" if db["USER"] else ""
    if db["HOST"].startswith("/"):  # Unix socket folder
        url = f"postgresql://{auth}/{name}?host={db['HOST']}"
    else:
        url = f"postgresql://{auth}{db['HOST']}:{db['PORT'] or 5432}/{name}"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ.setdefault("ENVIRONMENT", "test")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    return url


def timed(fn: Callable[[], Any], runs: int, warmup: int = 5) -> dict[str, float]:
    """p50/p95/mean in milliseconds of ``fn`` over ``runs`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "runs": runs,
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }
