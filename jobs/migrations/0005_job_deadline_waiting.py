"""Job deadlines, waiting for a breaker, and the message a client reads when a job fails.

The new columns are nullable or blank (no table rewrite); the two partial indexes are
built without blocking job writes.
"""

from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("jobs", "0004_job_finished_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="WaitingJob",
            fields=[],
            options={
                "verbose_name": "waiting job",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("jobs.job",),
        ),
        migrations.AddField(
            model_name="job",
            name="deadline_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="deadline_seconds",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="error_user_message",
            field=models.TextField(blank=True, default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="job",
            name="waiting_for",
            field=models.CharField(blank=True, max_length=120, default=""),
            preserve_default=False,
        ),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(("deadline_at__isnull", False), ("status", "queued")),
                fields=["deadline_at"],
                name="job_queued_deadline",
            ),
        ),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(
                    ("status", "queued"), models.Q(("waiting_for", ""), _negated=True)
                ),
                fields=["waiting_for"],
                name="job_waiting",
            ),
        ),
    ]
