"""16 real processes record the same fingerprint at once: the group count is exact."""

from __future__ import annotations

import subprocess
import time

import pytest
from django.db import connection

from controlplane.errors.models import ErrorGroup, ErrorRecord
from tests.conftest import PYTHON, REPO, subprocess_env

PROCESSES = 16
PER_PROCESS = 25

WRITER = f"""
import os, sys, time, django
django.setup()
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.recording import record_error
start_at = float(sys.argv[1])
while time.time() < start_at:
    time.sleep(0.001)
for _ in range({PER_PROCESS}):
    record_error(InternalServerError(code="RACE_TEST", technical_message="same failure"),
                 service="race")
"""


@pytest.mark.django_db
def test_concurrent_processes_leave_an_exact_group_count() -> None:
    env = subprocess_env(
        DATABASE_URL=f"postgresql://{connection.settings_dict['USER']}:@/"
        f"{connection.settings_dict['NAME']}?host={connection.settings_dict['HOST']}",
        DJANGO_SETTINGS_MODULE="controlplane.settings",
    )
    start_at = time.time() + 3  # every child is connected and waiting by then
    children = [
        subprocess.Popen(
            [PYTHON, "-c", WRITER, str(start_at)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err

    total = PROCESSES * PER_PROCESS
    assert ErrorRecord.objects.filter(code="RACE_TEST").count() == total
    group = ErrorGroup.objects.get(code="RACE_TEST")
    assert group.count == total
    latest = ErrorRecord.objects.filter(code="RACE_TEST").order_by("-created_at", "-id").first()
    assert group.last_seen == latest.created_at
