"""2. Admin actions refused for support staff, logged in over HTTP (session + CSRF):
breaker reset (changelist action with its override form, the open-breakers view, the ops
dashboard), job cancel (action and change form), cache warm, and the same through the API
with a token and with the admin session. The database must be unchanged after each
attempt; the same actions by demo-ops take effect (control)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.reliability.drills.security.common import (
    CLIENT,
    OPS,
    SUPPORT,
    AdminSession,
    Probe,
    hostile,
)
from tests.reliability.drills.stack import ROLES


class AdminProbe(Probe):
    # --- 2. admin actions -----------------------------------------------------------------

    def breaker_state(self) -> tuple[Any, ...]:
        return self.one(
            "SELECT b.state, b.override, b.generation, b.override_reason,"
            " (SELECT count(*) FROM breakers_breakerevent e WHERE e.breaker_id = b.id)"
            " FROM breakers_breaker b WHERE b.name = %s",
            [self.breaker_name],
        )

    def force_open(self, reason: str) -> int:
        name = self.breaker_name
        response = self.api(OPS).post(
            f"/api/v1/breakers/{name}/force-open/", json={"reason": reason}
        )
        if response.status_code != 200:
            raise RuntimeError(f"ops could not force {name} open: {response.text}")
        state = self.breaker_state()
        if state[1] != "forced_open":
            raise RuntimeError(f"{name} not forced open after the API said so: {state}")
        return self.one("SELECT id FROM breakers_breaker WHERE name = %s", [name])[0]

    def refused(self, label: str, response: httpx.Response, unchanged: bool, state: Any) -> None:
        ok = response.status_code in (200, 302, 403) and unchanged
        if self.check(
            ok, f"support {label}: {response.status_code}, state now {state}: {response.text[:200]}"
        ):
            self.figures["admin_refusals"] += 1

    def admin_actions(self) -> None:
        name = self.breaker_name
        reason = f"security drill {self.run_id} " + " ".join(hostile("breakers_breaker"))
        self.breaker_reason = reason
        created = self.api(CLIENT).post(
            f"/api/v1/breakers/{name}/outcomes/", json={"outcome": "success"}
        )
        if not self.check(created.status_code == 200, f"breaker outcome: {created.text}"):
            return
        pk = self.force_open(reason)
        job = self.api(CLIENT).post(
            "/api/v1/jobs/",
            json={"kind": "demo.sleep", "payload": {"seconds": 120}, "max_attempts": 1},
        )
        if not self.check(job.status_code == 201, f"client job: {job.text}"):
            return
        job_id = job.json()["id"]

        # Staff only: a client cannot log in to the admin at all.
        client_admin = self.admin(ROLES[CLIENT])
        if self.check(
            not client_admin.logged_in and "sessionid" not in client_admin.http.cookies,
            "demo-client (not staff) logged in to the admin",
        ):
            self.figures["admin_refusals"] += 1
        support = self.admin(ROLES[SUPPORT])
        ops = self.admin(ROLES[OPS])
        if not self.check(support.logged_in and ops.logged_in, "admin login failed"):
            return

        # Support sees the breaker but is offered no override, on the list or the dashboard.
        for session, offered in ((support, False), (ops, True)):
            page = session.get("/admin/breakers/breaker/", q=name)
            dash = session.get("/admin/dashboard/")
            has_action = 'value="reset_breakers"' in page.text
            has_form = f'action="/admin/dashboard/reset/{name}/"' in dash.text
            ok = page.status_code == dash.status_code == 200 and name in page.text
            ok = ok and has_action == offered and has_form == offered
            self.check(
                ok,
                f"{session.username}: breaker list {page.status_code} offers reset={has_action}, "
                f"dashboard {dash.status_code} offers reset={has_form} (expected {offered})",
            )
            key = "admin_controls" if offered else "admin_refusals"
            self.figures[key] += ok

        before = self.breaker_state()
        reset_form = {
            "action": "reset_breakers",
            "_selected_action": str(pk),
            "apply": "1",
            "reason": "admin reset form",
        }
        attempts: list[tuple[str, Callable[[], httpx.Response]]] = [
            ("reset action", lambda: support.post("/admin/breakers/breaker/", reset_form)),
            (
                "reset action on open breakers",
                lambda: support.post("/admin/breakers/openbreaker/", reset_form),
            ),
            (
                "reset action, changelist form",
                lambda: support.post("/admin/breakers/breaker/", {**reset_form, "index": "0"}),
            ),
            (
                "dashboard reset",
                lambda: support.post(f"/admin/dashboard/reset/{name}/", {"reason": "support"}),
            ),
            (
                "breaker change form",
                lambda: support.post(
                    f"/admin/breakers/breaker/{pk}/change/", {"failure_threshold": "1"}
                ),
            ),
            (
                "reset via the API with a token",
                lambda: self.api(SUPPORT).post(
                    f"/api/v1/breakers/{name}/reset/", json={"reason": "support"}
                ),
            ),
            (
                "reset via the API with the admin session",
                lambda: support.http.post(
                    f"/api/v1/breakers/{name}/reset/",
                    json={"reason": "support"},
                    headers={"X-CSRFToken": support.csrf},
                ),
            ),
        ]
        for label, attempt in attempts:
            response = attempt()
            after = self.breaker_state()
            self.refused(label, response, after == before, after)
            if "API" in label:
                self.expect_envelope(response, 403, "PERMISSION_DENIED", f"support {label}")
            if label == "breaker change form":
                self.check(response.status_code == 403, f"support {label}: {response.status_code}")

        # Controls: the same ways work for ops.
        controls: list[tuple[str, Callable[[], httpx.Response]]] = [
            ("reset action", lambda: ops.post("/admin/breakers/breaker/", reset_form)),
            (
                "dashboard reset",
                lambda: ops.post(f"/admin/dashboard/reset/{name}/", {"reason": "ops control"}),
            ),
            (
                "reset via the API with the admin session",
                lambda: ops.http.post(
                    f"/api/v1/breakers/{name}/reset/",
                    json={"reason": "ops control"},
                    headers={"X-CSRFToken": ops.csrf},
                ),
            ),
        ]
        for index, (label, attempt) in enumerate(controls):
            if index:
                self.force_open(reason)
            if "session" in label:
                # Without the CSRF token a session write is refused, even for ops.
                before = self.breaker_state()
                response = ops.http.post(
                    f"/api/v1/breakers/{name}/reset/", json={"reason": "no csrf"}
                )
                after = self.breaker_state()
                if self.check(
                    response.status_code == 403 and after == before,
                    f"ops session reset without CSRF: {response.status_code}, {after}",
                ):
                    self.figures["admin_refusals"] += 1
            response = attempt()
            state = self.breaker_state()
            if self.check(
                response.status_code in (200, 302) and state[1] == "" and state[0] == "closed",
                f"ops {label}: {response.status_code}, breaker now {state}",
            ):
                self.figures["admin_controls"] += 1
        self.force_open(reason)  # left open for the rendering checks

        self.job_cancel(support, ops, job_id)
        self.cache_warm(support, ops)

    def job_state(self, job_id: str) -> tuple[str, Any]:
        return self.one("SELECT status, cancel_requested_at FROM jobs_job WHERE id = %s", [job_id])

    def job_cancel(self, support: AdminSession, ops: AdminSession, job_id: str) -> None:
        cancel = {"action": "cancel_jobs", "_selected_action": job_id, "index": "0"}
        for session, offered in ((support, False), (ops, True)):
            page = session.get("/admin/jobs/job/", q=job_id)
            ok = page.status_code == 200 and job_id in page.text
            ok = ok and ('value="cancel_jobs"' in page.text) == offered
            self.check(ok, f"{session.username}: job list {page.status_code}, cancel offered?")
            self.figures["admin_controls" if offered else "admin_refusals"] += ok
        attempts: list[tuple[str, Callable[[], httpx.Response]]] = [
            ("cancel action", lambda: support.post("/admin/jobs/job/", cancel)),
            (
                "cancel action, running jobs",
                lambda: support.post("/admin/jobs/runningjob/", cancel),
            ),
            ("job change form", lambda: support.post(f"/admin/jobs/job/{job_id}/change/", {})),
            (
                "cancel via the API",
                lambda: self.api(SUPPORT).post(f"/api/v1/jobs/{job_id}/cancel/"),
            ),
            (
                "cancel via the API with the admin session",
                lambda: support.http.post(
                    f"/api/v1/jobs/{job_id}/cancel/", headers={"X-CSRFToken": support.csrf}
                ),
            ),
        ]
        for label, attempt in attempts:
            response = attempt()
            status, requested = self.job_state(job_id)
            unchanged = requested is None and status in ("queued", "running")
            self.refused(label, response, unchanged, (status, requested))
            if "API" in label:
                self.expect_envelope(response, 403, "PERMISSION_DENIED", f"support {label}")
            if label == "job change form":
                self.check(response.status_code == 403, f"support {label}: {response.status_code}")
        response = ops.post("/admin/jobs/job/", cancel)
        status, requested = self.job_state(job_id)
        if self.check(
            response.status_code == 302 and requested is not None,
            f"ops cancel action: {response.status_code}, job {status}, requested {requested}",
        ):
            self.figures["admin_controls"] += 1
        final = self.wait_job(job_id, "the job ops cancelled", seconds=30)
        self.check(final == "cancelled", f"the job ops cancelled ended {final}")

    def cache_warm(self, support: AdminSession, ops: AdminSession) -> None:
        def reports() -> int:
            return self.one("SELECT count(*) FROM lookups_warmreport")[0]

        before, quiet_since = reports(), time.monotonic()
        deadline = quiet_since + 15
        while time.monotonic() - quiet_since < 1 and time.monotonic() < deadline:
            time.sleep(0.1)  # late answers to earlier broadcasts must not count here
            if (now := reports()) != before:
                before, quiet_since = now, time.monotonic()
        response = support.post("/admin/lookups/microservice/stats/", {})
        time.sleep(0.5)  # any process answering a broadcast would have written by now
        self.refused("cache warm", response, reports() == before, reports())
        response = ops.post("/admin/lookups/microservice/stats/", {})
        if self.check(
            response.status_code == 302 and reports() > before,
            f"ops cache warm: {response.status_code}, warm reports {before} -> {reports()}",
        ):
            self.figures["admin_controls"] += 1
