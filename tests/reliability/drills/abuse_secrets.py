"""The abuse drill's secret shapes, support references and inputs that used to crash
(see abuse.py)."""

from __future__ import annotations

import json
import time
import uuid

import httpx

from tests.reliability.drills import REVIEWED_SECRET_KEYS, envelope_of
from tests.reliability.drills.security.common import CLIENT, OPS, SUPPORT, Probe

ALL_DIGIT_JOB = "00000000-0000-0000-0000-000000000000"


class SecretsProbe(Probe):
    def secret(self, shape: str) -> str:
        value = f"abuse{shape}{uuid.uuid4().hex[:12]}"
        self.secrets_sent[shape] = value
        return value

    # --- 4. secret shapes -----------------------------------------------------------------

    def secret_shapes(self) -> None:
        self.secrets_sent: dict[str, str] = {}
        client = self.api(CLIENT)
        shown: list[str] = []

        def remember(response: httpx.Response) -> None:
            error = envelope_of(response.json()) if response.status_code >= 400 else None
            if error is not None:
                shown.append(error["support_id"])
            elif response.status_code in (200, 201) and "support_id" in response.text:
                shown.append(response.json()["support_id"])

        words = [self.secret(f"word{n}") for n in range(3)]
        semicolon = self.secret("semicolon")
        keys = {key: self.secret(key.replace("-", "")) for key in REVIEWED_SECRET_KEYS}
        message = f"{{'password': '{' '.join(words)}'}} and password=abc;{semicolon} " + " ".join(
            f"{key}={value}" for key, value in keys.items()
        )
        remember(
            client.post(
                "/api/v1/errors/",
                json={
                    "code": "ABUSE_SECRETS",
                    "message": message,
                    "service": "abuse",
                    "context": {key: value for key, value in keys.items()},
                },
            )
        )
        query = "&".join(f"{key}={value}" for key, value in keys.items())
        remember(client.get(f"/api/v1/no-such-thing/?{query}"))
        path_secret = self.secret("path")
        remember(client.get(f"/api/v1/reset/token={path_secret}/"))
        agent_secret = self.secret("agent")
        remember(
            client.get("/api/v1/no-such-thing/", headers={"User-Agent": f"x token={agent_secret}"})
        )
        form_secret = self.secret("multipart")
        boundary = "abuseboundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="password"\r\n\r\n'
            f"{form_secret}\r\n--{boundary}--\r\n"
        )
        remember(
            client.post(
                "/api/v1/errors/",
                content=body.encode(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
        )
        job_secret = self.secret("job")
        job = client.post(
            "/api/v1/jobs/",
            json={
                "kind": "demo.sleep",
                "payload": {"seconds": f"api_key=sk-live-{job_secret}"},
                "max_attempts": 1,
            },
        ).json()
        self.wait_job(job["id"], "the job failing on its secret payload")
        uuid_probe = client.get(f"/api/v1/jobs/{ALL_DIGIT_JOB}/")
        remember(uuid_probe)
        self.uuid_reference = shown[-1]
        self.shown_secret_references = shown
        self.grep_everywhere(shown, job["id"])

    def grep_everywhere(self, references: list[str], job_id: str) -> None:
        time.sleep(1.0)  # log lines flushed by the workers
        support, ops = self.admin("demo-support"), self.admin("demo-ops")
        pages = [support.get("/admin/errors/errorrecord/", q=sid).text for sid in references]
        pages.append(ops.get(f"/admin/jobs/job/{job_id}/change/").text)
        hits: dict[str, list[str]] = {}
        for shape, value in self.secrets_sent.items():
            # A job's payload is the client's own input, kept to run the job (and shown
            # scrubbed); everything else about the job must not quote it.
            found = list(self.grep_tables(value, skip=frozenset({"jobs_job"})))
            found += ["jobs_job"] if self.job_rows_quoting(value) else []
            found += self.grep_files(value)
            found += [f"admin page {n}" for n, page in enumerate(pages) if value in page]
            if found:
                hits[shape] = found
        self.figures["secret_shapes"] = len(self.secrets_sent)
        self.figures["secret_shapes_found"] = len(hits)
        self.check(not hits, f"secrets stored or shown: {json.dumps(hits)[:1500]}")
        (path,) = self.one(
            "SELECT request_path FROM errors_errorrecord WHERE support_id = %s",
            [self.uuid_reference],
        )
        self.check(ALL_DIGIT_JOB in path, f"an all-digit job UUID was stored as {path!r}")

    def job_rows_quoting(self, value: str) -> int:
        return self.one(
            "SELECT count(*) FROM jobs_job j WHERE (to_jsonb(j) - 'payload')::text LIKE %s",
            [f"%{value}%"],
        )[0]

    # --- 4b. references -------------------------------------------------------------------

    def references(self) -> None:
        client = self.api(CLIENT)
        missing_job = uuid.uuid4()
        answer = client.get(f"/api/v1/jobs/{missing_job}/").json()["error"]
        support = self.admin("demo-support")
        landed = support.get("/admin/errors/errorrecord/", q=answer["message"])
        self.check(
            landed.status_code == 302
            and answer["support_id"] in support.get(landed.headers.get("location", "/")).text,
            f"pasting {answer['message']!r} did not land on its record ({landed.status_code})",
        )
        other = client.get(f"/api/v1/jobs/{uuid.uuid4()}/").json()["error"]["support_id"]
        both = support.get(
            "/admin/errors/errorrecord/", q=f"{answer['support_id']} and {other}"
        ).text
        self.check(
            answer["support_id"] in both and other in both,
            "a text with two support UUIDs did not list both records",
        )

    # --- 4c. inputs that used to crash ----------------------------------------------------

    def inputs_that_crashed(self) -> None:
        support = self.admin("demo-support")
        search = support.get("/admin/errors/errorrecord/", q="a" * 33)
        self.check(search.status_code == 200, f"a 33-digit search answered {search.status_code}")
        slugs = [f"abuse-{n:03d}-" + "x" * 80 for n in range(100)]
        warm = self.api(OPS).post("/api/v1/lookups/warm/", json={"slugs": slugs})
        self.check(warm.status_code == 200, f"a large warm request: {warm.status_code}")
        with httpx.Client(base_url=self.stack.base_url, timeout=60) as anonymous:
            many = anonymous.get("/api/v1/jobs/?" + "&".join(["a"] * 1001))
        error = envelope_of(many.json()) if many.status_code >= 400 else None
        self.check(
            error is not None, f"1,001 query parameters: {many.status_code} {many.text[:200]}"
        )
        if error is not None:
            resolved = self.api(SUPPORT).get(f"/api/v1/errors/{error['support_id']}/")
            self.check(
                resolved.status_code == 200, "the 1,001-parameter reference does not resolve"
            )
        big = self.api(CLIENT).post(
            "/api/v1/errors/",
            json={
                "code": "ABUSE_BIG",
                "message": "m",
                "service": "s",
                "context": {"blob": "x" * 100_000},
            },
        )
        self.expect_envelope(big, 413, (), "an error report with a 100 KB context")
