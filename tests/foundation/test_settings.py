"""Settings read in a fresh process, as the web server and worker read them."""

from __future__ import annotations

import re
import subprocess

import pytest
from django.conf import settings

from tests.conftest import PYTHON, REPO, subprocess_env

PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "a-real-secret-" + "x" * 50,
    "ALLOWED_HOSTS": "controlplane.example.com",
    "METRICS_TOKEN": "scrape-" + "t" * 40,
}


def run_django(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = "import django; django.setup(); " + code
    return subprocess.run(
        [PYTHON, "-c", script],
        cwd=REPO,
        env=subprocess_env(DJANGO_SETTINGS_MODULE="controlplane.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_refuses_debug_maybe() -> None:
    result = run_django("", DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_it_honours_database_url() -> None:
    """DATABASE_URL wins over the embedded server: the child connects where it says."""
    default = settings.DATABASES["default"]
    url = f"postgres://{default['USER']}:@/{default['NAME']}?host={default['HOST']}&application_name=probe"
    code = (
        "from django.conf import settings; from django.db import connection; "
        "c = connection.cursor(); c.execute('SELECT current_database(), "
        "current_setting(%s)', ['application_name']); "
        "print(settings.EMBEDDED_DATABASE, *c.fetchone())"
    )
    result = run_django(code, DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", default["NAME"], "probe"]


@pytest.mark.parametrize("pool", ["true", "false"])
def test_it_connects_with_and_without_the_psycopg_pool(pool: str) -> None:
    code = (
        "from django.db import connection; from django.conf import settings; "
        "c = connection.cursor(); c.execute('SELECT 1'); "
        "print(c.fetchone()[0], 'pool' in settings.DATABASES['default']['OPTIONS'])"
    )
    result = run_django(code, DB_POOL=pool)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True" if pool == "true" else "False"]


def test_it_passes_the_deploy_checks_in_production() -> None:
    result = subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy"],
        cwd=REPO,
        env=subprocess_env(**PRODUCTION),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERRORS:" not in output
    # The warnings left are choices, documented in the README: HSTS preload is opt-in
    # (SECURE_HSTS_PRELOAD) because submitting a domain to browsers is hard to undo, and
    # breakers fail open while the database is unreachable (BREAKER_FAIL_OPEN).
    assert set(re.findall(r"\((\S+\.W\d+)\)", output)) <= {
        "security.W021",
        "controlplane.W002",
    }, output
