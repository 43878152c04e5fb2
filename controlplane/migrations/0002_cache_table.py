"""Create the database cache table django-q2 keeps cluster status in (`createcachetable`),
so a plain `migrate` is all a new database needs."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("controlplane", "0001_auth_notify")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
