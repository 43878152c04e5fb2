from __future__ import annotations

from typing import Any

from django.contrib.admin.models import LogEntry
from django.db import connection

from jobs.actions import create_job
from jobs.models import Job

CHANGELIST = "/admin/jobs/job/"


def test_ops_cancel_from_the_admin_and_are_told_what_was_skipped(
    clean_jobs: None, ops_user: Any, client: Any
) -> None:
    queued = create_job(kind="demo.sleep", payload={})[0]
    done = create_job(kind="demo.sleep", payload={})[0]
    Job.objects.filter(pk=done.pk).update(status="succeeded")
    client.force_login(ops_user)
    page = client.post(
        CHANGELIST, {"action": "cancel_jobs", "_selected_action": [queued.pk, done.pk]}, follow=True
    ).content.decode()
    assert f"Cancel requested for 1: {queued.id} (cancelled)" in page
    assert f"Skipped 1 already finished: {done.id} (succeeded)" in page
    assert Job.objects.get(pk=queued.pk).status == "cancelled"
    assert Job.objects.get(pk=queued.pk).events.last().actor == ops_user.username
    logged = LogEntry.objects.filter(object_id=str(queued.pk))
    assert [(e.user_id, e.change_message) for e in logged] == [
        (ops_user.pk, "Cancel requested (cancelled).")
    ]
    assert not LogEntry.objects.filter(object_id=str(done.pk)).exists()  # nothing changed


def test_retry_now(clean_jobs: None, ops_user: Any, client: Any) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET status = 'failed', attempts = 3, error_code = 'x' WHERE id = %s",
            [job.id],
        )
    client.force_login(ops_user)
    client.post(CHANGELIST, {"action": "retry_jobs", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error_code) == ("queued", 0, "")
    entry = LogEntry.objects.get(object_id=str(job.pk))
    assert (entry.user_id, entry.change_message) == (ops_user.pk, "Re-queued now (fresh attempts).")


def test_support_sees_jobs_but_cannot_cancel(
    clean_jobs: None, support_user: Any, client: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={"secret_token": "t0k", "n": 1})[0]
    client.force_login(support_user)
    listing = client.get(CHANGELIST).content.decode()
    assert str(job.id) in listing and "cancel_jobs" not in listing
    client.post(CHANGELIST, {"action": "cancel_jobs", "_selected_action": [job.pk]})
    assert Job.objects.get(pk=job.pk).status == "queued"
    page = client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()
    assert "t0k" not in page and "[Filtered]" in page  # payload shown scrubbed


def test_search_by_id_key_or_support_id(clean_jobs: None, support_user: Any, client: Any) -> None:
    import uuid

    a = create_job(kind="demo.sleep", payload={}, idempotency_key="order-7")[0]
    b = create_job(kind="demo.sleep", payload={})[0]
    support_id = uuid.uuid4()
    Job.objects.filter(pk=b.pk).update(error_support_id=support_id)
    client.force_login(support_user)
    for term, expected, other in (
        (str(a.id), a, b),
        ("order-7", a, b),
        (f"Reference: {support_id}", b, a),
    ):
        page = client.get(CHANGELIST, {"q": term}).content.decode()
        assert str(expected.id) in page and str(other.id) not in page, term
