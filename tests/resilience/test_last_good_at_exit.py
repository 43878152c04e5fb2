"""A last good answer handed to the writer just before its process ends cleanly is stored:
the exit waits for the writer (a daemon thread, which an exit would otherwise cut off).

Real processes: a django-q2 worker (django-q2's own worker loop, in a process forked as the
cluster's sentinel forks it) takes one task calling a provider group, then STOP, as
runworker's drain sends it. The provider is a real HTTP server on 127.0.0.1, and the writer
reaches PostgreSQL through a proxy that holds every byte until the worker's exit says it
waits for the writer, or the worker is gone (a database slow to answer just then): without
the wait at exit, the answer is lost every time, not only when the exit beats the writer.

(A plain process, e.g. a gunicorn worker leaving through ``sys.exit``, runs the same
finalizer from ``atexit``; its interpreter shutdown takes long enough that the writer
often finishes anyway, so no test here could tell the two apart.)"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.resilience.models import LastGoodResponse
from tests.conftest import PYTHON, REPO, django_child_env
from tests.db_proxy import DatabaseProxy
from tests.resilience.flaky_server import Script, flaky_server

pytestmark = pytest.mark.slow


@pytest.fixture
def group(transactional_db: Any, fresh_name: str) -> Iterator[str]:
    yield fresh_name
    LastGoodResponse.objects.filter(group_name=fresh_name).delete()


def run_in_a_worker(group: str, url: str) -> dict[str, Any]:
    provider = f"{group}-provider"
    env = django_child_env(
        PROVIDERS=json.dumps({provider: {"base_url": url, "mode": "real", "max_attempts": 1}}),
        PROVIDER_GROUPS=json.dumps(
            {
                group: {
                    "providers": [provider],
                    "fallback": {"type": "last_good", "max_age_seconds": 3600},
                }
            }
        ),
    )
    with DatabaseProxy.for_test_database() as proxy:
        proxy.hang()
        child = subprocess.Popen(
            [PYTHON, "-m", "tests.resilience.last_good_child", group, proxy.url()],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stderr_lines: list[str] = []
        waiting = threading.Event()

        def read_stderr() -> None:
            for line in child.stderr:
                stderr_lines.append(line)
                if "exiting: storing pending last good answers" in line:
                    waiting.set()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        # The database comes back once the worker's exit waits for the writer, or once the
        # worker is gone (its exit did not wait: the answer went with it).
        deadline = time.monotonic() + 60
        while not waiting.is_set() and child.poll() is None:
            assert time.monotonic() < deadline, "".join(stderr_lines)
            waiting.wait(0.01)
        proxy.resume()
        stdout = child.communicate(timeout=60)[0]
        reader.join(10)
    stderr = "".join(stderr_lines)
    assert child.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def test_a_django_q2_worker_told_to_stop_stores_the_answer_first(group: str) -> None:
    script = Script([(200, {})])
    with flaky_server(script) as url:
        ran = run_in_a_worker(group, url)
    assert ran == {"result": 200, "success": True, "exit": 0}
    assert script.requests == 1
    row = LastGoodResponse.objects.get(group_name=group)
    assert (row.method, row.path, row.status) == ("GET", "/v1/models", 200)
