"""3. A secret sent in error reports (context keys, nested, headers, message text, URLs)
and in requests that fail (400, 401, 403 CSRF, malformed JSON, a failing job) never
appears in any table (``t::text LIKE``) nor in the stack's log and spool files; a marker
sent alongside is found by the same grep (the control)."""

from __future__ import annotations

import json
import re
import uuid

import httpx

from tests.reliability.drills.security.common import CLIENT, SUPPORT, Probe
from tests.reliability.drills.stack import ROLES

SUPPORT_REFERENCE = re.compile(r'id="support-reference">([0-9a-f-]{36})<')


class SecretProbe(Probe):
    # --- 3. secrets -----------------------------------------------------------------------

    def secrets(self) -> None:
        secret = f"drillsecret{uuid.uuid4().hex}"
        marker = f"drillmarker{uuid.uuid4().hex}"  # sent alongside; must be found (control)
        places = {
            "password": secret,
            "passwd": secret,
            "token": secret,
            "authorization": f"Bearer {secret}",
            "api_key": secret,
            "apiKey": secret,
            "X-Api-Key": secret,
            "session_id": secret,
            "csrftoken": secret,
            "nested": {
                "deeper": [{"client_secret": secret, "private_key": secret, "note": marker}],
                "headers": {"Authorization": f"Token {secret}", "Cookie": f"sessionid={secret}"},
            },
            "url": f"https://provider.example/v1/parse?api_key={secret}&page=2",
            "log": f"upstream said 401; Authorization: Bearer {secret}",
            "raw_headers": f"X-Api-Key: {secret}\nAccept: application/json",
            "repr": f"{{'password': '{secret}', 'user': 'alice'}}",
            "json": f'{{"client_secret": "{secret}", "n": 1}}',
            "dsn": f"postgresql://app:{secret}@db.internal:5432/app",
            "marker": marker,
        }
        message = (
            f"upstream refused {marker}: Authorization: Bearer {secret}; "
            f"GET https://provider.example/v1/parse?api_key={secret}&page=2; "
            f"X-Api-Key: {secret}; password={secret}; "
            f"connecting to postgresql://app:{secret}@db.internal:5432/app"
        )
        # In the report: the context, the message, the user message, a header, the query.
        self.figures["secret_places"] = json.dumps(places).count(secret) + message.count(secret) + 3
        client = self.api(CLIENT)
        references: list[str] = []

        def sent(response: httpx.Response, status: int, label: str) -> None:
            self.figures["secret_requests"] += 1
            reference = ""
            if response.status_code == status:
                try:
                    body = response.json()
                    reference = body.get("support_id") or body["error"]["support_id"]
                except (ValueError, KeyError, TypeError):
                    found = SUPPORT_REFERENCE.search(response.text)
                    reference = found.group(1) if found else ""
            if self.check(
                bool(reference), f"secret probe {label}: {response.status_code} {response.text}"
            ):
                references.append(reference)

        # Reports that are stored.
        sent(
            client.post(
                f"/api/v1/errors/?api_key={secret}",
                json={
                    "code": "SECURITY_DRILL_SECRET",
                    "message": message,
                    "user_message": f"Parsing failed (upstream: Authorization: Bearer {secret}).",
                    "service": "security-drill",
                    "context": places,
                },
                headers={"X-Api-Key": secret},
            ),
            201,
            "error report",
        )
        # Requests that fail: each leaves an error record of its own.
        sent(
            client.post(
                f"/api/v1/errors/?api_key={secret}&note={marker}",
                json={
                    "code": "not upper snake",
                    "message": message,
                    "service": "security-drill",
                    "context": places,
                    "password": secret,
                },
                headers={"X-Api-Key": secret},
            ),
            400,
            "invalid error report",
        )
        sent(
            client.get("/api/v1/jobs/", params={"status": "bogus", "token": secret}),
            400,
            "invalid job filter",
        )
        sent(
            client.post(
                "/api/v1/jobs/",
                content=f'{{"kind": "demo.sleep", "payload": {{"password": "{secret}", "n": ',
                headers={"Content-Type": "application/json"},
            ),
            400,
            "malformed JSON",
        )
        sent(
            client.post(
                "/api/v1/jobs/",
                json={"kind": "no.such.kind", "payload": {"api_key": secret, "note": marker}},
            ),
            422,
            "unknown job kind",
        )
        anonymous = self.api(None)
        sent(
            anonymous.get("/api/v1/jobs/", headers={"Authorization": f"Token {secret}"}),
            401,
            "unknown token",
        )
        sent(
            anonymous.get(
                f"/api/v1/jobs/?access_token={secret}",
                headers={"Authorization": f"Bearer {secret}", "Cookie": f"sessionid={secret}"},
            ),
            401,
            "bearer token and session cookie",
        )
        sent(
            anonymous.get(f"/api/v1/no-such-thing/?password={secret}"),
            404,
            "unknown path",
        )
        login = httpx.Client(base_url=self.stack.base_url, timeout=60)
        self.clients["login-no-csrf"] = login
        sent(
            login.post(
                "/admin/login/",
                data={"username": ROLES[SUPPORT], "password": secret},
                headers={"Accept": "text/html"},
            ),
            403,
            "admin login without CSRF",
        )
        # A job whose payload holds a secret, and which fails: the payload is the job's
        # input (stored as given), but its error record must not carry the secret.
        job_secret = f"drilljobsecret{uuid.uuid4().hex}"
        job = client.post(
            "/api/v1/jobs/",
            json={
                "kind": "demo.sleep",
                "payload": {
                    "seconds": 0,
                    "fail_times": 5,
                    "password": job_secret,
                    "note": f"Authorization: Bearer {job_secret}",
                },
                "max_attempts": 1,
            },
        )
        job_reference = None
        if self.check(job.status_code == 201, f"failing job: {job.text}"):
            job_id = job.json()["id"]
            status = self.wait_job(job_id, "the failing job")
            job_reference = self.one(
                "SELECT error_support_id FROM jobs_job WHERE id = %s", [job_id]
            )[0]
            self.check(
                status == "failed" and job_reference is not None,
                f"the failing job ended {status} with error record {job_reference}",
            )

        # Every request left its record, and the records hold the marker (the grep works).
        stored = self.one(
            "SELECT count(*) FROM errors_errorrecord WHERE support_id::text = ANY(%s)",
            [references],
        )[0]
        self.check(
            stored == len(references),
            f"only {stored} of {len(references)} error records of the secret probes are stored",
        )
        marked = self.grep_tables(marker)
        self.check(
            marked.get("public.errors_errorrecord", 0) >= 3,
            f"the marker sent with the secret is not found by the grep: {marked}",
        )
        filtered = self.one(
            "SELECT count(*) FROM errors_errorrecord"
            " WHERE support_id::text = ANY(%s) AND context::text LIKE '%%[Filtered]%%'",
            [references],
        )[0]
        self.check(filtered >= 5, f"only {filtered} secret-probe records show [Filtered]")

        hits = self.grep_tables(secret)
        job_hits = self.grep_tables(job_secret, skip=frozenset({"jobs_job"}))
        files = self.grep_files(secret) + self.grep_files(job_secret)
        self.figures["secret_hits"] = sum(hits.values()) + sum(job_hits.values())
        self.figures["secret_hits_files"] = len(files)
        self.check(not hits, f"the secret is stored in {hits}")
        self.check(not job_hits, f"the failing job's secret is stored in {job_hits}")
        self.check(not files, f"the secret is written to {files}")
        # Nor shown: the API and the admin page of the stored report.
        support = self.admin(ROLES[SUPPORT])
        for reference in references[:1] + ([str(job_reference)] if job_reference else []):
            shown = self.api(SUPPORT).get(f"/api/v1/errors/{reference}/")
            pk = self.one("SELECT id FROM errors_errorrecord WHERE support_id = %s", [reference])
            page = support.get(f"/admin/errors/errorrecord/{pk[0]}/change/") if pk else shown
            for label, response in (("API", shown), ("admin", page)):
                leaked = secret in response.text or job_secret in response.text
                self.figures["secret_hits"] += leaked
                self.check(
                    response.status_code == 200 and not leaked,
                    f"{label} view of {reference}: {response.status_code}, secret shown={leaked}",
                )
