from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.models import ErrorGroup, ErrorRecord
from controlplane.errors.recording import record_error


@pytest.mark.made_up_error_codes
@pytest.mark.django_db
def test_purge_deletes_only_old_records_in_batches(settings: Any) -> None:
    settings.ERROR_RETENTION_DAYS = 30
    old = [
        record_error(InternalServerError(code="OLD", technical_message=f"o{n}")) for n in range(7)
    ]
    new = record_error(InternalServerError(code="NEW", technical_message="n"))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE errors_errorrecord SET created_at = now() - interval '31 days' "
            "WHERE code = 'OLD'"
        )
        cursor.execute(
            "UPDATE errors_errorgroup SET last_seen = now() - interval '31 days' WHERE code = 'OLD'"
        )
    out = StringIO()
    call_command("purge_errors", "--batch-size", "3", stdout=out)
    assert "Deleted 7 error records older than 30 days." in out.getvalue()
    assert "deleted 3 so far" in out.getvalue() and "deleted 6 so far" in out.getvalue()
    assert not ErrorRecord.objects.filter(support_id__in=[r.support_id for r in old]).exists()
    assert ErrorRecord.objects.filter(support_id=new.support_id).exists()
    assert list(ErrorGroup.objects.values_list("code", flat=True)) == ["NEW"]


@pytest.mark.made_up_error_codes
@pytest.mark.django_db
def test_anonymous_records_are_purged_sooner(settings: Any) -> None:
    settings.ERROR_RETENTION_DAYS, settings.ERROR_ANONYMOUS_RETENTION_DAYS = 90, 7
    response = Client().get("/api/v1/jobs/")  # no token: an anonymous record
    anonymous = response.json()["error"]["support_id"]
    signed = record_error(InternalServerError(code="KEPT", technical_message="k")).support_id
    with connection.cursor() as cursor:
        cursor.execute("UPDATE errors_errorrecord SET created_at = now() - interval '8 days'")
    call_command("purge_errors", stdout=StringIO())
    assert not ErrorRecord.objects.filter(support_id=anonymous).exists()
    assert ErrorRecord.objects.filter(support_id=signed).exists()
