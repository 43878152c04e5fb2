"""An index for the dashboard's last overrides, built without blocking breaker events."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("breakers", "0003_owners_and_usable_policies")]

    operations = [
        AddIndexConcurrently(
            model_name="breakerevent",
            index=models.Index(
                fields=["-created_at"],
                condition=models.Q(("kind", "override")),
                name="breakerevent_overrides",
            ),
        ),
    ]
