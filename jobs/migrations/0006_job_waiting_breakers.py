"""Every breaker a waiting job waits for, so that any of them permitting wakes it (a job to a
provider group waits for all of the group's breakers; ``waiting_for`` only names them).

The column has a constant database default: no table rewrite, and a process still running
the previous code inserts jobs without naming it. Jobs already waiting get the one breaker
their ``waiting_for`` names.
"""

import django.contrib.postgres.fields
from django.db import migrations, models

BACKFILL = """
UPDATE jobs_job SET waiting_breakers = ARRAY[substr(waiting_for, length('breaker ') + 1)]
WHERE status = 'queued' AND waiting_for LIKE 'breaker %'
"""


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0005_job_deadline_waiting"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="waiting_breakers",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(max_length=100),
                blank=True,
                db_default=[],
                default=list,
                size=None,
            ),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
