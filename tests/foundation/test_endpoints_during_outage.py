"""Which endpoints answer while PostgreSQL is stopped, and which answer 503 (README
"Which endpoints work during an outage"): lookups (stale or the slug-only fallback),
error reports (spooled), liveness, metrics and the schema answer; everything that must
read or write the database answers 503 with a support_id, and the admin its 503 page.
Each client's token was used before the stop (tests/outage.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.outage import Child, OwnServer, child_of, code, own_server  # noqa: F401

pytestmark = pytest.mark.slow

REPORT = {"code": "CLIENT_FAILED", "message": "reported during the outage", "service": "drill"}
# (method, path, role, body, status during the outage, error code or None)
JOBS_BODY = {"kind": "demo.sleep", "payload": {}}
DURING_OUTAGE = [
    ("GET", "/api/v1/lookups/outage-held/", "client", None, 200, None),  # stale
    ("GET", "/api/v1/lookups/outage-unseen/", "client", None, 200, None),  # slug-only fallback
    ("POST", "/api/v1/lookups/batch/", "client", {"slugs": ["outage-held"]}, 200, None),
    ("POST", "/api/v1/errors/", "client", REPORT, 201, None),  # spooled
    ("GET", "/healthz", None, None, 200, None),
    ("GET", "/metrics", None, None, 200, None),
    ("GET", "/api/schema/", None, None, 200, None),
    ("GET", "/api/v1/health/", None, None, 503, None),  # its report says "unhealthy"
    ("GET", "/api/v1/lookups/stats/", "support", None, 503, "DATABASE_UNAVAILABLE"),
    ("POST", "/api/v1/lookups/warm/", "ops", {}, 503, "DATABASE_UNAVAILABLE"),
    ("GET", "/api/v1/micro-services/", "client", None, 503, "DATABASE_UNAVAILABLE"),
    ("GET", "/api/v1/errors/", "support", None, 503, "DATABASE_UNAVAILABLE"),
    ("POST", "/api/v1/jobs/", "client", JOBS_BODY, 503, "DATABASE_UNAVAILABLE"),
    ("GET", "/api/v1/jobs/", "client", None, 503, "DATABASE_UNAVAILABLE"),
    ("GET", "/api/v1/breakers/", "support", None, 503, "DATABASE_UNAVAILABLE"),
    ("GET", "/api/v1/breakers/upstream/permit/", "client", None, 503, "DATABASE_UNAVAILABLE"),
    ("GET", "/admin/", "admin", None, 503, None),  # the admin's own 503 page
]


def test_what_answers_while_the_database_is_stopped(
    own_server: OwnServer,  # noqa: F811
    child_of: Any,  # noqa: F811
) -> None:
    child: Child = child_of()
    made = child.do(
        "setup",
        users={"ep-client": "clients", "ep-support": "support", "ep-ops": "ops"},
        services=["outage-held"],
        staff=True,
    )
    tokens = {role: made["tokens"][f"ep-{role}"] for role in ("client", "support", "ops")}
    session = child.do("login", username="ep-ops")["session"]

    def call(method: str, path: str, role: str | None, body: Any) -> dict[str, Any]:
        if role == "admin":
            return child.do("request", method=method, path=path, session=session)
        token = tokens[role] if role else None
        return child.do("request", method=method, path=path, token=token, body=body)

    for method, path, role, body, _, _ in DURING_OUTAGE:  # every token and the slug held
        assert call(method, path, role, body)["status"] < 500, (method, path)

    own_server.stop()
    child.do("wait_lost")
    answers = {(m, p): call(m, p, role, body) for m, p, role, body, _, _ in DURING_OUTAGE}
    seen = {endpoint: (answer["status"], code(answer)) for endpoint, answer in answers.items()}
    assert seen == {(m, p): (status, error) for m, p, _, _, status, error in DURING_OUTAGE}
    spooled = answers[("POST", "/api/v1/errors/")]["body"]["support_id"]

    own_server.start()
    child.do("wait_back")
    deadline = time.monotonic() + 30  # the spool is replayed once the listener is back

    def in_table() -> bool:
        found = child.get(f"/api/v1/errors/{spooled}/", tokens["support"])
        return found["status"] == 200 and found["body"]["spooled"] is False

    while not in_table():
        assert time.monotonic() < deadline, "the spooled report never reached the table"
        time.sleep(0.2)
