"""Shared by the security probes: roles, the error-envelope check, the admin session and
the ``Probe`` base (HTTP clients, database queries, greps, sections)."""

from __future__ import annotations

import json
import re
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from psycopg import sql

from tests.reliability.drills import ENVELOPE_KEYS, DrillResult
from tests.reliability.drills.stack import Stack

CLIENT, SUPPORT, OPS = "client", "support", "ops"
ANY_GROUP = frozenset({CLIENT, SUPPORT, OPS})  # IsAnyGroup, IsClient | IsSupport
CLIENTS = frozenset({CLIENT, OPS})  # IsClient: groups clients and ops
SUPPORTS = frozenset({SUPPORT, OPS})  # IsSupport: groups support and ops
OPS_ONLY = frozenset({OPS})  # IsOps

LEAKS = ("Traceback", 'File "', "SELECT ", "psycopg", "/work/")
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ADMIN_PASSWORD = "demo"  # the demo users' development password (controlplane/demo.py)


def hostile(table: str) -> list[str]:
    """Injection strings; the SQL one names a table the probe later checks is still there."""
    return [
        "<script>alert(1)</script>",
        f"'; DROP TABLE {table}; --",
        '" onmouseover="alert(1)',
        "<img src=x onerror=alert(1)>",
    ]


def json_text(value: str) -> str:
    """How a string looks inside json.dumps output (the admin's context / payload blocks)."""
    return json.dumps(value)[1:-1]


def where(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url.raw_path.decode(errors='replace')[:160]}"


def envelope_problem(
    response: httpx.Response, status: int | tuple[int, ...], codes: str | tuple[str, ...] = ()
) -> str | None:
    """None when ``response`` is our error envelope with that status (and one of the codes)."""
    statuses = (status,) if isinstance(status, int) else status
    codes = (codes,) if isinstance(codes, str) else codes
    if response.status_code not in statuses:
        return (
            f"{where(response)}: {response.status_code}, expected {statuses}: {response.text[:200]}"
        )
    try:
        error = response.json()["error"]
        keys = set(error)
    except (ValueError, KeyError, TypeError):
        return (
            f"{where(response)}: {response.status_code} without the envelope: {response.text[:200]}"
        )
    if keys != ENVELOPE_KEYS:
        return f"{where(response)}: envelope keys {sorted(keys)}"
    if codes and error["code"] not in codes:
        return f"{where(response)}: code {error['code']}, expected {codes}"
    if not str(error["message"]).endswith(f"(Reference: {error['support_id']})"):
        return f"{where(response)}: message without its reference: {error['message']!r}"
    leaked = [leak for leak in LEAKS if leak in str(error["message"])]
    if leaked:
        return f"{where(response)}: message leaks {leaked}: {error['message']!r}"
    return None


@dataclass
class Operation:
    method: str
    template: str
    public: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.template)


class AdminSession:
    """A browser-like admin session: log in with the form, then post forms with the CSRF token."""

    def __init__(self, stack: Stack, username: str) -> None:
        self.username = username
        self.http = httpx.Client(base_url=stack.base_url, timeout=60)
        self.logged_in = self.login(ADMIN_PASSWORD).status_code == 302

    def login(self, password: str) -> httpx.Response:
        page = self.http.get("/admin/login/", params={"next": "/admin/"})
        found = CSRF_INPUT.search(page.text)
        if page.status_code != 200 or not found:
            raise RuntimeError(f"admin login page: {page.status_code} {page.text[:300]}")
        return self.http.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": found.group(1),
                "username": self.username,
                "password": password,
                "next": "/admin/",
            },
        )

    @property
    def csrf(self) -> str:
        return self.http.cookies.get("csrftoken") or ""

    def get(self, url: str, **params: Any) -> httpx.Response:
        return self.http.get(url, params=params or None)

    def post(self, url: str, data: dict[str, Any]) -> httpx.Response:
        return self.http.post(url, data={**data, "csrfmiddlewaretoken": self.csrf})

    def close(self) -> None:
        self.http.close()


class Probe:
    def __init__(self, stack: Stack, result: DrillResult) -> None:
        self.stack = stack
        self.result = result
        self.run_id = uuid.uuid4().hex[:10]
        self.db = stack.connect()
        self.clients: dict[str | None, httpx.Client] = {}
        self.sessions: list[AdminSession] = []
        self.ops: list[Operation] = []  # the documented operations (authentication())
        self.breaker_reason: str | None = None
        self.figures: dict[str, Any] = {
            "operations_probed": 0,
            "unauthenticated_401": 0,
            "bad_token_401": 0,
            "no_group_403": 0,
            "matrix_refusals": 0,
            "matrix_permitted": 0,
            "ownership_refusals": 0,
            "admin_refusals": 0,
            "admin_controls": 0,
            "secret_places": 0,
            "secret_requests": 0,
            "secret_hits": 0,
            "secret_hits_files": 0,
            "injection_checks": 0,
            "tables_checked": 0,
        }
        self.tables_before = self.tables()
        self.breaker_name = f"security-drill-{self.run_id}"

    # --- plumbing -------------------------------------------------------------------------

    def api(self, role: str | None) -> httpx.Client:
        if role not in self.clients:
            self.clients[role] = self.stack.api(role, timeout=60)
        return self.clients[role]

    def token_api(self, token: str) -> httpx.Client:
        key = f"token:{token}"
        if key not in self.clients:
            self.clients[key] = httpx.Client(
                base_url=self.stack.base_url,
                headers={"Authorization": f"Token {token}"},
                timeout=60,
            )
        return self.clients[key]

    def admin(self, username: str) -> AdminSession:
        session = AdminSession(self.stack, username)
        self.sessions.append(session)
        return session

    def check(self, ok: bool, failure: str) -> bool:
        self.result.check(ok, failure)
        return ok

    def expect_envelope(
        self,
        response: httpx.Response,
        status: int | tuple[int, ...],
        codes: str | tuple[str, ...] = (),
        label: str = "",
    ) -> bool:
        problem = envelope_problem(response, status, codes)
        return self.check(problem is None, f"{label}{': ' if label else ''}{problem}")

    def one(self, query: str, params: Any = ()) -> Any:
        return self.db.execute(query, params).fetchone()

    def tables(self) -> set[tuple[str, str]]:
        rows = self.db.execute(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        return {(schema, table) for schema, table in rows}

    def grep_tables(self, needle: str, skip: frozenset[str] = frozenset()) -> dict[str, int]:
        """Rows of every table whose text form contains ``needle``."""
        hits = {}
        for schema, table in sorted(self.tables()):
            if table in skip:
                continue
            query = sql.SQL("SELECT count(*) FROM {} t WHERE t::text LIKE %s").format(
                sql.Identifier(schema, table)
            )
            count = self.db.execute(query, [f"%{needle}%"]).fetchone()[0]
            if count:
                hits[f"{schema}.{table}"] = count
        return hits

    def grep_files(self, needle: str) -> list[str]:
        found = []
        for path in sorted(self.stack.workdir.rglob("*")):
            if "pgdata" in path.parts or not path.is_file():
                continue
            if path.suffix not in (".log", ".jsonl", ".json", ".txt"):
                continue
            if needle in path.read_text(errors="replace"):
                found.append(str(path.relative_to(self.stack.workdir)))
        return found

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        for session in self.sessions:
            session.close()
        self.db.close()

    def section(self, name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # one broken section must not hide what the others found
            self.result.failures.append(f"{name} crashed:\n{traceback.format_exc()}")

    def wait_job(self, job_id: str, label: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        status = ""
        while time.monotonic() < deadline:
            status = self.one("SELECT status FROM jobs_job WHERE id = %s", [job_id])[0]
            if status in ("succeeded", "failed", "cancelled", "timed_out"):
                return status
            time.sleep(0.2)
        self.result.failures.append(f"{label} {job_id} still {status} after {seconds} s")
        return status
