"""Cache-warm reports and the stats of processes gone quiet are kept
LOOKUP_REPORT_RETENTION_DAYS."""

from __future__ import annotations

import uuid
from io import StringIO
from typing import Any

from django.core.management import call_command
from django.db import connection

from lookups import stats
from lookups.models import ProcessStats, WarmReport


def test_old_warm_reports_and_quiet_processes_stats_are_purged(
    transactional_db: Any, settings: Any
) -> None:
    settings.LOOKUP_REPORT_RETENTION_DAYS = 1
    old, new = uuid.uuid4(), uuid.uuid4()
    WarmReport.objects.create(request_id=old, process="gone:1:web", warmed=1)
    WarmReport.objects.create(request_id=new, process="here:2:web", warmed=1)
    ProcessStats.objects.create(process="gone:1:web", data={})
    ProcessStats.objects.create(process="here:2:web", data={})
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE lookups_warmreport SET created_at = now() - interval '2 days'"
            " WHERE request_id = %s",
            [old],
        )
        cursor.execute(
            "UPDATE lookups_processstats SET updated_at = now() - interval '2 days'"
            " WHERE process = 'gone:1:web'"
        )
    out = StringIO()
    call_command("purge_old_data", "--only", "lookup-reports", stdout=out)
    assert "lookup-reports: deleted 2" in out.getvalue()
    assert list(WarmReport.objects.values_list("request_id", flat=True)) == [new]
    # (This process's own row, if its upkeep thread flushed meanwhile, is fresh: kept.)
    kept = ProcessStats.objects.exclude(process=stats.process_name())
    assert list(kept.values_list("process", flat=True)) == ["here:2:web"]
