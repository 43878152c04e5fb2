from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db
def test_it_runs_against_real_postgresql() -> None:
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version_num')::int")
        (version,) = cursor.fetchone()
    assert version >= 140000


@pytest.mark.django_db
def test_it_has_the_groups_after_migrate() -> None:
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"clients", "support", "ops"}
