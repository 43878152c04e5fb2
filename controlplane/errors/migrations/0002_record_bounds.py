"""Error records say whether they came from an anonymous request, were stored compact, or
were reported by a client (controlplane.errors.bounds). Adding a column with a constant
default is instant; the index is built without blocking the error writers."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("errors", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="errorrecord",
            name="anonymous",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="errorrecord",
            name="compact",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="errorrecord",
            name="reported",
            field=models.BooleanField(db_default=False, default=False),
        ),
        AddIndexConcurrently(
            model_name="errorrecord",
            index=models.Index(
                condition=models.Q(("anonymous", True)),
                fields=["created_at"],
                name="errorrecord_anonymous_created",
            ),
        ),
    ]
