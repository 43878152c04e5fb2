"""4. Injection strings in slugs (refused, 400/404 envelopes), error reports, job payloads
and Idempotency-Keys, micro-service names and breaker reasons are stored verbatim and
rendered escaped in the admin pages support sees (change pages, changelists, searches),
and every table is still there at the end."""

from __future__ import annotations

import html
from urllib.parse import quote

import httpx
from psycopg import sql

from tests.reliability.drills.security.common import (
    CLIENT,
    OPS,
    SUPPORT,
    AdminSession,
    Probe,
    hostile,
    json_text,
)
from tests.reliability.drills.stack import ROLES


class InjectionProbe(Probe):
    # --- 4. injection ---------------------------------------------------------------------

    def escaped_in(self, page: httpx.Response, values: list[str], label: str, js: bool) -> None:
        """Each raw value absent from the page, its escaped form present."""
        if not self.check(page.status_code == 200, f"{label}: {page.status_code}"):
            return
        for value in values:
            escaped = html.escape(json_text(value) if js else value)
            self.figures["injection_checks"] += 1
            self.check(value not in page.text, f"{label}: raw {value!r} in the HTML")
            self.check(escaped in page.text, f"{label}: escaped {escaped!r} not in the HTML")

    def injections(self) -> None:
        support = self.admin(ROLES[SUPPORT])
        self.check(support.logged_in, "demo-support could not log in to the admin")
        self.injection_slugs()
        self.injection_micro_service(support)
        self.injection_error_report(support)
        self.injection_job(support)
        self.injection_breaker(support)

    def injection_slugs(self) -> None:
        strings = [
            *hostile("lookups_microservice"),
            "wall-painting' OR '1'='1",
            "%' OR 1=1 --",
            "wall-painting;--",
        ]
        client, ops = self.api(CLIENT), self.api(OPS)
        for value in strings:
            encoded = quote(value, safe="")
            created = ops.post("/api/v1/micro-services/", json={"slug": value, "name": "x"})
            self.figures["injection_checks"] += 1
            if self.expect_envelope(created, 400, "INVALID_REQUEST", "hostile slug created"):
                fields = created.json()["error"]["metadata"].get("fields", {})
                self.check("slug" in fields, f"hostile slug refused without naming it: {fields}")
            for response, codes in (
                (client.get(f"/api/v1/lookups/{encoded}/"), ("INVALID_SLUG", "NOT_FOUND")),
                (
                    client.get(f"/api/v1/micro-services/{encoded}/"),
                    ("MICRO_SERVICE_NOT_FOUND", "NOT_FOUND"),
                ),
                (
                    client.get(f"/api/v1/breakers/{encoded}/"),
                    ("INVALID_BREAKER_NAME", "NOT_FOUND"),
                ),
            ):
                self.figures["injection_checks"] += 1
                self.expect_envelope(response, (400, 404), codes, "hostile path")
            # The browsable API renders HTML for a browser: the value must come out escaped.
            page = client.get(f"/api/v1/lookups/{encoded}/", headers={"Accept": "text/html"})
            self.figures["injection_checks"] += 1
            if html.escape(value) != value and "html" in page.headers.get("Content-Type", ""):
                self.check(value not in page.text, f"raw {value!r} in the browsable API page")
        batch = client.post("/api/v1/lookups/batch/", json={"slugs": strings})
        self.figures["injection_checks"] += 1
        if self.check(batch.status_code == 200, f"batch of hostile slugs: {batch.text[:200]}"):
            codes = [item.get("error", {}).get("code") for item in batch.json()["results"]]
            self.check(
                codes == ["INVALID_SLUG"] * len(strings), f"hostile slugs in a batch: {codes}"
            )
        stored = self.one(
            "SELECT count(*) FROM lookups_microservice WHERE slug = ANY(%s)", [strings]
        )[0]
        self.check(stored == 0, f"{stored} hostile slugs were stored")

    def injection_micro_service(self, support: AdminSession) -> None:
        slug = f"security-drill-{self.run_id}"
        name = " ".join(hostile("lookups_microservice"))
        ops = self.api(OPS)
        created = ops.post("/api/v1/micro-services/", json={"slug": slug, "name": name})
        if not self.check(created.status_code == 201, f"micro-service: {created.text}"):
            return
        try:
            pk, stored = self.one(
                "SELECT id, name FROM lookups_microservice WHERE slug = %s", [slug]
            )
            self.check(stored == name, f"micro-service name stored as {stored!r}")
            changed = ops.patch(f"/api/v1/micro-services/{slug}/", json={"slug": hostile("x")[1]})
            self.figures["injection_checks"] += 1
            self.expect_envelope(changed, 400, "INVALID_REQUEST", "slug changed to a hostile one")
            still = self.one("SELECT slug FROM lookups_microservice WHERE id = %s", [pk])[0]
            self.check(still == slug, f"the micro-service slug became {still!r}")
            values = hostile("lookups_microservice")
            listing = support.get("/admin/lookups/microservice/", q=slug)
            self.check(slug in listing.text, "the micro-service is not in the admin list")
            self.escaped_in(listing, values, "micro-service changelist", js=False)
            page = support.get(f"/admin/lookups/microservice/{pk}/change/")
            self.escaped_in(page, values, "micro-service change page", js=False)
            search = support.get("/admin/lookups/microservice/", q=values[0])
            self.escaped_in(search, values[:1], "micro-service search", js=False)
        finally:
            ops.delete(f"/api/v1/micro-services/{slug}/")

    def injection_error_report(self, support: AdminSession) -> None:
        values = hostile("errors_errorrecord")
        message = "\n".join(values)
        service = "".join([values[0], hostile("errors_errorgroup")[1], values[2]])
        context = {"note": message, values[3]: values[2], "nested": [values[0]]}
        user_message = f"{values[0]} {values[2]}"
        response = self.api(CLIENT).post(
            "/api/v1/errors/",
            json={
                "code": "SECURITY_DRILL_INJECTION",
                "message": message,
                "user_message": user_message,
                "service": service,
                "context": context,
            },
        )
        if not self.check(response.status_code == 201, f"hostile error report: {response.text}"):
            return
        support_id = response.json()["support_id"]
        row = self.one(
            "SELECT id, technical_message, user_message, service, context"
            " FROM errors_errorrecord WHERE support_id = %s",
            [support_id],
        )
        self.figures["injection_checks"] += 1
        if not self.check(row is not None, f"hostile error report {support_id} not stored"):
            return
        pk = row[0]
        self.check(
            tuple(row[1:]) == (message, user_message, service, context),
            f"the hostile error report was not stored verbatim: {row[1:]}",
        )
        page = support.get(f"/admin/errors/errorrecord/{pk}/change/")
        self.escaped_in(page, values, "error record change page", js=False)
        self.escaped_in(page, values, "error record context block", js=True)
        listing = support.get("/admin/errors/errorrecord/", q=support_id[:13])
        self.check(support_id in listing.text, "prefix search does not list the record")
        service_parts = [values[0], hostile("errors_errorgroup")[1], values[2]]
        self.escaped_in(listing, service_parts, "error record changelist", js=False)
        for value in values:
            search = support.get("/admin/errors/errorrecord/", q=value)
            self.escaped_in(search, [value], "error record search box", js=False)
        groups = support.get("/admin/errors/errorgroup/", q="SECURITY_DRILL_INJECTION")
        self.escaped_in(groups, service_parts, "error group changelist", js=False)

    def injection_job(self, support: AdminSession) -> None:
        values = hostile("jobs_job")
        payload = {"seconds": 0, "note": " ".join(values), values[3]: values[0]}
        key = f"{self.run_id} {values[0]}{values[2]}"
        response = self.api(CLIENT).post(
            "/api/v1/jobs/",
            json={"kind": "demo.sleep", "payload": payload},
            headers={"Idempotency-Key": key},
        )
        if not self.check(response.status_code == 201, f"hostile job: {response.text}"):
            return
        job_id = response.json()["id"]
        stored, stored_key = self.one(
            "SELECT payload, idempotency_key FROM jobs_job WHERE id = %s", [job_id]
        )
        self.figures["injection_checks"] += 1
        self.check(
            stored == payload and stored_key == key,
            f"the hostile job was not stored verbatim: {stored!r} {stored_key!r}",
        )
        self.wait_job(job_id, "the hostile job")
        page = support.get(f"/admin/jobs/job/{job_id}/change/")
        self.escaped_in(page, values, "job payload block", js=True)
        self.escaped_in(page, [values[0], values[2]], "job idempotency key", js=False)
        search = support.get("/admin/jobs/job/", q=key)
        self.check(job_id in search.text, "the job admin search by Idempotency-Key missed it")
        self.escaped_in(search, [values[0], values[2]], "job search box", js=False)

    def injection_breaker(self, support: AdminSession) -> None:
        row = self.one(
            "SELECT id, override_reason FROM breakers_breaker WHERE name = %s", [self.breaker_name]
        )
        reason = self.breaker_reason
        if not self.check(row is not None and reason is not None, "no breaker to render"):
            return
        self.figures["injection_checks"] += 1
        self.check(row[1] == reason, f"the breaker reason was stored as {row[1]!r}")
        values = hostile("breakers_breaker")
        listing = support.get("/admin/breakers/breaker/", q=self.breaker_name)
        self.escaped_in(listing, values, "breaker changelist", js=False)
        page = support.get(f"/admin/breakers/breaker/{row[0]}/change/")
        self.escaped_in(page, values, "breaker change page", js=False)

    def tables_intact(self) -> None:
        after = self.tables()
        self.figures["tables_checked"] = len(self.tables_before)
        self.check(after >= self.tables_before, f"tables gone: {self.tables_before - after}")
        for table in ("errors_errorrecord", "errors_errorgroup", "jobs_job", "breakers_breaker"):
            count = self.one(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0]
            self.check(count > 0, f"{table} is empty after the drill")
