"""Cancel and Retry now as buttons on one job's admin page: POST with CSRF, ops only, the
same change and LogEntry as the list's bulk actions, disabled when they cannot apply."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client

from jobs.actions import create_job
from jobs.models import Job

JOBS = "/admin/jobs/job/"


def set_status(job: Job, status: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_job SET status = %s WHERE id = %s", [status, job.id])


def logged(job: Job) -> list[tuple[int, str]]:
    return [(e.user_id, e.change_message) for e in LogEntry.objects.filter(object_id=str(job.pk))]


def test_ops_cancel_a_queued_job_from_its_page(
    clean_jobs: None, ops_user: Any, client: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    client.force_login(ops_user)
    page = client.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert 'id="job-cancel" class="job-action"\n    >' in page  # enabled
    assert 'id="job-retry" class="job-action"\n    disabled' in page
    response = client.post(f"{JOBS}{job.pk}/cancel/")
    assert (response.status_code, response["Location"]) == (302, f"{JOBS}{job.pk}/change/")
    shown = client.get(response["Location"]).content.decode()
    assert f"Cancel requested for job {job.pk} (cancelled)." in shown
    assert Job.objects.get(pk=job.pk).status == "cancelled"
    assert Job.objects.get(pk=job.pk).events.last().actor == ops_user.username
    assert logged(job) == [(ops_user.pk, "Cancel requested (cancelled).")]


def test_a_running_job_page_offers_cancel_and_says_when_it_was_requested(
    clean_jobs: None, ops_user: Any, client: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    set_status(job, "running")
    client.force_login(ops_user)
    client.post(f"{JOBS}{job.pk}/cancel/")
    assert logged(job) == [(ops_user.pk, "Cancel requested (stopping).")]
    page = client.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert "Cancel already requested" in page and "Cancel requested</button>" in page


def test_a_finished_job_cannot_be_cancelled(clean_jobs: None, ops_user: Any, client: Any) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    set_status(job, "succeeded")
    client.force_login(ops_user)
    page = client.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert "A succeeded job cannot be cancelled" in page
    shown = client.post(f"{JOBS}{job.pk}/cancel/", follow=True).content.decode()
    assert "The job is already succeeded and cannot be cancelled." in shown
    assert Job.objects.get(pk=job.pk).status == "succeeded"
    assert logged(job) == []


def test_ops_retry_a_failed_job_from_its_page(clean_jobs: None, ops_user: Any, client: Any) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET status = 'failed', attempts = 3, error_code = 'x' WHERE id = %s",
            [job.id],
        )
    client.force_login(ops_user)
    page = client.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert 'id="job-retry" class="job-action"\n    >' in page
    shown = client.post(f"{JOBS}{job.pk}/retry/", follow=True).content.decode()
    assert f"Job {job.pk} re-queued now with fresh attempts." in shown
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("queued", 0)
    assert logged(job) == [(ops_user.pk, "Re-queued now (fresh attempts).")]
    again = client.post(f"{JOBS}{job.pk}/retry/", follow=True).content.decode()
    assert "was not re-queued: only failed or timed-out jobs can be" in again
    assert len(logged(job)) == 1  # nothing written, nothing logged


def test_support_sees_no_buttons_and_is_refused(
    clean_jobs: None, support_user: Any, client: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    client.force_login(support_user)
    page = client.get(f"{JOBS}{job.pk}/change/").content.decode()
    assert "job-cancel" not in page and "job-retry" not in page
    assert client.post(f"{JOBS}{job.pk}/cancel/").status_code == 403
    assert client.post(f"{JOBS}{job.pk}/retry/").status_code == 403
    assert Job.objects.get(pk=job.pk).status == "queued"
    assert logged(job) == []


def test_the_buttons_need_post_and_a_csrf_token(
    clean_jobs: None, ops_user: Any, client: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    client.force_login(ops_user)
    assert client.get(f"{JOBS}{job.pk}/cancel/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(ops_user)
    assert strict.post(f"{JOBS}{job.pk}/cancel/").status_code == 403
    assert Job.objects.get(pk=job.pk).status == "queued"
    page = strict.get(f"{JOBS}{job.pk}/change/")
    token = page.cookies["csrftoken"].value
    done = strict.post(f"{JOBS}{job.pk}/cancel/", {"csrfmiddlewaretoken": token})
    assert done.status_code == 302
    assert Job.objects.get(pk=job.pk).status == "cancelled"


def test_the_proxy_lists_have_the_buttons_too(clean_jobs: None, ops_user: Any, client: Any) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    set_status(job, "running")
    client.force_login(ops_user)
    page = client.get(f"/admin/jobs/runningjob/{job.pk}/change/").content.decode()
    assert f'action="/admin/jobs/runningjob/{job.pk}/cancel/"' in page
    response = client.post(f"/admin/jobs/runningjob/{job.pk}/cancel/")
    assert response["Location"] == f"{JOBS}{job.pk}/change/"  # soon no longer a running one
    assert Job.objects.get(pk=job.pk).cancel_requested_at is not None
