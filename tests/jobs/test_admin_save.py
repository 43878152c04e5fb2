"""Saving a job in the admin never overwrites a worker: the claim, status and lease are
read-only, and the one thing ops may edit (max_attempts, while the job is queued) is
written by a conditional UPDATE that a worker's transition beats."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import connection

from jobs import lifecycle
from jobs.actions import create_job
from jobs.admin import JobAdmin
from jobs.models import Job


def change_url(job: Job) -> str:
    return f"/admin/jobs/job/{job.pk}/change/"


def form(**fields: Any) -> dict[str, Any]:
    """A change-form POST: the fields plus the (empty) event inline's management form."""
    return {"events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", **fields}


def log_entries(job: Job) -> list[LogEntry]:
    return list(LogEntry.objects.filter(object_id=str(job.pk)))


def in_a_worker(statement: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Run a lifecycle statement on a connection of its own, as a worker process would."""
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["row"] = lifecycle.execute_one(statement, params)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    return done["row"]


def claim(job: Job) -> dict[str, Any]:
    row = in_a_worker(lifecycle.CLAIM, {"id": job.id, "lease": 30, "worker": "w1/1"})
    assert row is not None
    return row


@pytest.fixture
def meanwhile(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], None]:
    """``meanwhile(fn)``: ``fn`` runs right after the admin has loaded the job for a save,
    before it writes (the window a worker's transition used to be lost in)."""

    def arrange(fn: Callable[[], Any]) -> None:
        original = JobAdmin.get_object

        def get_object(self: JobAdmin, request: Any, object_id: str, from_field: Any = None):
            obj = original(self, request, object_id, from_field)
            if request.method == "POST":
                fn()
            return obj

        monkeypatch.setattr(JobAdmin, "get_object", get_object)

    return arrange


def test_it_leaves_a_job_a_worker_finished_during_the_save_finished(
    clean_jobs: None, ops_user: Any, client: Any, meanwhile: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    claimed = claim(job)
    meanwhile(
        lambda: in_a_worker(
            lifecycle.SUCCEED,
            {"id": job.id, "claim": claimed["claim_id"], "result": {"ok": 1}, "result_url": ""},
        )
    )
    client.force_login(ops_user)
    response = client.post(change_url(job), form(max_attempts="5"))
    job.refresh_from_db()
    assert (job.status, job.result, job.progress, job.max_attempts) == (
        "succeeded",
        {"ok": 1},
        100,
        3,
    )
    assert job.lease_expires_at is None and job.finished_at is not None
    assert response.status_code == 403  # a running job is not the admin's to save
    assert log_entries(job) == []
    page = client.get(change_url(job)).content.decode()
    assert 'name="_save"' not in page and "View job" in page


def test_an_edit_loses_to_a_worker_that_claims_the_job_meanwhile(
    clean_jobs: None, ops_user: Any, client: Any, meanwhile: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    claimed: dict[str, Any] = {}
    meanwhile(lambda: claimed.update(claim(job)))
    client.force_login(ops_user)
    page = client.post(change_url(job), form(max_attempts="5"), follow=True).content.decode()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.claim_id, job.worker) == (
        "running",
        1,
        claimed["claim_id"],
        "w1/1",
    )
    assert job.max_attempts == 3 and job.lease_expires_at is not None
    assert "was not changed" in page and "no longer queued" in page
    assert log_entries(job) == []  # nothing changed, nothing logged


def test_ops_change_max_attempts_of_a_queued_job_and_it_is_logged(
    clean_jobs: None, ops_user: Any, client: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={"n": 1})[0]
    client.force_login(ops_user)
    response = client.post(change_url(job), form(max_attempts="7"))
    assert response.status_code == 302, response.content.decode()[-2000:]
    job.refresh_from_db()
    assert (job.status, job.max_attempts, job.attempts, job.payload) == ("queued", 7, 0, {"n": 1})
    [entry] = log_entries(job)
    assert (entry.user_id, entry.action_flag) == (ops_user.pk, CHANGE)
    assert "Max attempts" in entry.get_change_message()


@pytest.mark.parametrize("value", ["0", "11", "1"])
def test_max_attempts_must_leave_a_run_and_stay_in_bounds(
    clean_jobs: None, ops_user: Any, client: Any, value: str
) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    Job.objects.filter(pk=job.pk).update(attempts=1)  # queued for its second run
    client.force_login(ops_user)
    response = client.post(change_url(job), form(max_attempts=value))
    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors["max_attempts"]
    job.refresh_from_db()
    assert job.max_attempts == 3 and log_entries(job) == []


def test_only_max_attempts_is_editable_even_on_a_queued_job(
    clean_jobs: None, ops_user: Any, client: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    client.force_login(ops_user)
    fields = client.get(change_url(job)).context["adminform"].form.fields
    assert set(fields) == {"max_attempts"}
    client.post(
        change_url(job),
        form(max_attempts="4", status="succeeded", attempts="9", worker="x", claim_id=""),
    )
    job.refresh_from_db()
    assert (job.max_attempts, job.status, job.attempts, job.worker) == (4, "queued", 0, "")


def test_a_job_row_is_never_saved_whole(clean_jobs: None) -> None:
    """Every other column belongs to a conditional transition (jobs.lifecycle)."""
    job = create_job(kind="demo.sleep", payload={})[0]
    job.max_attempts = 9
    with pytest.raises(TypeError, match="update_fields"):
        job.save()
    assert Job.objects.get(pk=job.pk).max_attempts == 3
