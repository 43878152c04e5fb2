"""Tasks already in django-q2's queue name the job entry point by its dotted path, which
moved from jobs.runner.run_job to jobs.tasks.run_job: point them at the new one, so jobs
queued before an upgrade run at once instead of failing to import and waiting for
maintenance to dispatch them again (JOB_REDISPATCH_SECONDS)."""

from django.db import migrations

OLD, NEW = "jobs.runner.run_job", "jobs.tasks.run_job"


def _repoint(apps, schema_editor, old, new):
    from django_q.signing import SignedPackage

    OrmQ = apps.get_model("django_q", "OrmQ")
    queued = OrmQ.objects.using(schema_editor.connection.alias)
    for row in queued.iterator():
        try:
            task = SignedPackage.loads(row.payload)
        except Exception:  # noqa: S112 -- signed with another SECRET_KEY: unrunnable anyway
            continue
        if task.get("func") == old:
            task["func"] = new
            row.payload = SignedPackage.dumps(task)
            row.save(update_fields=["payload"])


def forwards(apps, schema_editor):
    _repoint(apps, schema_editor, OLD, NEW)


def backwards(apps, schema_editor):
    _repoint(apps, schema_editor, NEW, OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_job_claim_id_alter_job_idempotency_key_and_more"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
