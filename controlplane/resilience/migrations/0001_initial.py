from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    """The app's first migration: its tables arrive in the ones that follow."""

    initial = True
    dependencies: list[tuple[str, str]] = []
    operations: list[migrations.operations.base.Operation] = []
