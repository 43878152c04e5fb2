"""NOTIFY wake-ups (jobs.wakeups): an INSERT into django-q2's queue wakes the pushers
(``jobs_enqueued``), and a running job's cancel or shutdown request reaches the worker
process running it (``jobs_interrupt``, payload: the job's id). Both are delivered when the
transaction that made the change commits; polling stays the safety net."""

from django.db import migrations

FORWARDS = """
CREATE FUNCTION jobs_notify_enqueued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobs_enqueued', '');
    RETURN NULL;
END $$;
-- Per statement: a batch of tasks wakes each pusher once (and PostgreSQL folds identical
-- notifications of one transaction into one).
CREATE TRIGGER jobs_wake_pushers AFTER INSERT ON django_q_ormq
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_enqueued();

CREATE FUNCTION jobs_notify_interrupt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobs_interrupt', NEW.id::text);
    RETURN NULL;
END $$;
-- Fires only for statements that set one of these columns (a cancel, a drain; a claim
-- clears shutdown_requested_at and the WHEN skips it): heartbeats and outcomes pay nothing.
CREATE TRIGGER jobs_interrupt_running
    AFTER UPDATE OF cancel_requested_at, shutdown_requested_at ON jobs_job
    FOR EACH ROW WHEN (NEW.status = 'running' AND (
        (NEW.cancel_requested_at IS NOT NULL AND OLD.cancel_requested_at IS NULL)
        OR (NEW.shutdown_requested_at IS NOT NULL
            AND NEW.shutdown_requested_at IS DISTINCT FROM OLD.shutdown_requested_at)))
    EXECUTE FUNCTION jobs_notify_interrupt();
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS jobs_interrupt_running ON jobs_job;
DROP FUNCTION IF EXISTS jobs_notify_interrupt();
DROP TRIGGER IF EXISTS jobs_wake_pushers ON django_q_ormq;
DROP FUNCTION IF EXISTS jobs_notify_enqueued();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0007_job_trace_context"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunSQL(FORWARDS, BACKWARDS)]
