"""Drill: hostile traffic must not knock over the service that records it.

Against the drills' real stack (gunicorn + runworker + PostgreSQL), over HTTP:

1. **Anonymous flood**: requests without a token, each with 40 headers of 8 KB random
   base64. The error tables may grow by at most 2 MB per 200 requests, and every
   support_id handed out resolves through the support API.
2. **Label flood**: requests with random HTTP methods and error reports with random codes
   add at most ``MAX_NEW_SERIES`` series to ``/metrics``.
3. **Breaker names**: a client's names are its own (another client can neither report to
   them nor take their probes), the breakers this service runs are nobody's, a name with
   a trailing newline is refused, an outcome in half-open counts only with a probe, a
   client cannot create breakers without bound, and with a thousand other breakers an open
   upstream of this service is still in the dashboard's "Broken right now" box and first
   in the "Open breakers" list.
4. **Secrets and references** (abuse_secrets.py): every secret shape of the scrubbing
   table, sent in error reports, failing jobs, paths, User-Agents and form bodies, is in no
   table, log, spool file or admin page; an all-digit UUID in a path is stored intact;
   pasting "No job <uuid>. (Reference: <sid>)" into the admin search lands on ``<sid>``;
   inputs that used to answer 500 answer with an envelope.
"""

from __future__ import annotations

import base64
import os
import random
import string
import time
import uuid
from typing import Any

import httpx

from controlplane.breakers import sql
from tests.reliability.drills import DrillResult, envelope_of
from tests.reliability.drills.abuse_secrets import SecretsProbe
from tests.reliability.drills.flapping import BREAKER as POLICY
from tests.reliability.drills.security.common import CLIENT, SUPPORT
from tests.reliability.drills.stack import Stack

FLOOD_BYTES = 2 * 1024 * 1024  # for 200 requests (more requests: proportionally more)
MAX_NEW_SERIES = 40
FLOOD_HEADERS, FLOOD_HEADER_BYTES = 40, 8000  # gunicorn's limit per header line is 8,190
SERVICE_BREAKER = "llamaparse"  # an upstream this service's own code calls


class AbuseProbe(SecretsProbe):
    def __init__(self, stack: Stack, result: DrillResult) -> None:
        super().__init__(stack, result)
        self.figures = {}  # this drill's own figures, not the security probes' counters

    # --- 1. anonymous flood ---------------------------------------------------------------

    def error_tables_bytes(self) -> int:
        return self.one(
            "SELECT pg_total_relation_size('errors_errorrecord')"
            " + pg_total_relation_size('errors_errorgroup')"
        )[0]

    def anonymous_flood(self, requests: int) -> None:
        self.db.execute("VACUUM errors_errorrecord")  # start from pages without dead rows
        before = self.error_tables_bytes()
        rng = random.Random(f"{self.run_id}-flood")
        shown: list[str] = []
        refused = 0
        with httpx.Client(base_url=self.stack.base_url, timeout=60) as anonymous:
            for _ in range(requests):
                headers = {
                    f"X-Flood-{n:02d}": base64.b64encode(
                        rng.randbytes(FLOOD_HEADER_BYTES * 3 // 4)
                    ).decode()[:FLOOD_HEADER_BYTES]
                    for n in range(FLOOD_HEADERS)
                }
                response = anonymous.get("/api/v1/jobs/", headers=headers)
                error = envelope_of(response.json()) if response.status_code >= 400 else None
                if error is None:
                    refused += 1
                    continue
                shown.append(error["support_id"])
        grown = self.error_tables_bytes() - before
        missing = self.unresolved(shown)
        self.figures.update(
            flood_requests=requests,
            flood_growth_bytes=grown,
            bytes_per_anonymous_request=round(grown / requests),
            flood_ids_missing=len(missing),
        )
        self.check(refused == 0, f"{refused} flood requests were not answered with an envelope")
        limit = FLOOD_BYTES * max(1.0, requests / 200)
        self.check(grown <= limit, f"the flood grew the error tables by {grown} B (> {limit})")
        self.check(not missing, f"{len(missing)} flood support_ids do not resolve: {missing[:3]}")

    def unresolved(self, support_ids: list[str]) -> list[str]:
        support = self.api(SUPPORT)
        return [
            sid for sid in support_ids if support.get(f"/api/v1/errors/{sid}/").status_code != 200
        ]

    # --- 2. label flood -------------------------------------------------------------------

    def series(self) -> int:
        text = httpx.get(f"{self.stack.base_url}/metrics", timeout=60).text
        return sum(1 for line in text.splitlines() if line and not line.startswith("#"))

    def label_flood(self, requests: int) -> None:
        before = self.series()
        rng = random.Random(f"{self.run_id}-labels")
        client = self.api(CLIENT)
        with httpx.Client(base_url=self.stack.base_url, timeout=60) as anonymous:
            for _ in range(requests):
                method = "".join(rng.choices(string.ascii_uppercase, k=8))
                anonymous.request(method, "/api/v1/")
        for _ in range(requests):
            code = "FLOOD_" + "".join(rng.choices(string.ascii_uppercase, k=10))
            client.post(
                "/api/v1/errors/", json={"code": code, "message": "label flood", "service": "x"}
            )
        added = self.series() - before
        self.figures.update(label_flood_requests=2 * requests, metric_series_added=added)
        self.check(
            added <= MAX_NEW_SERIES,
            f"{requests} random methods and {requests} random codes added {added} metric series",
        )

    # --- 3. breaker names -----------------------------------------------------------------

    def second_client(self) -> httpx.Client:
        code = (
            "from django.contrib.auth import get_user_model\n"
            "from django.contrib.auth.models import Group\n"
            "from rest_framework.authtoken.models import Token\n"
            "user, _ = get_user_model().objects.get_or_create(username='abuse-drill-client-b')\n"
            "user.groups.set(Group.objects.filter(name='clients'))\n"
            "print('TOKEN', Token.objects.get_or_create(user=user)[0].key)\n"
        )
        output = self.stack.manage("shell", "-c", code)
        token = next(line.split()[1] for line in output.splitlines() if line.startswith("TOKEN"))
        return self.token_api(token)

    def outcome(self, api: httpx.Client, name: str, outcome: str, **extra: Any) -> httpx.Response:
        return api.post(f"/api/v1/breakers/{name}/outcomes/", json={"outcome": outcome, **extra})

    def breaker_names(self, flood: int, others: int) -> None:
        mine, theirs = self.api(CLIENT), self.second_client()
        name = f"abuse-{self.run_id}"
        self.check(
            self.outcome(mine, name, "success").status_code == 200,
            "a client could not create a breaker of its own",
        )
        for api, label in ((theirs, "another client's"), (mine, "this service's")):
            target = name if api is theirs else SERVICE_BREAKER
            if target == SERVICE_BREAKER:
                self.make_breakers([SERVICE_BREAKER], owner=None, open_=False)
            self.expect_envelope(
                self.outcome(api, target, "failure"), 403, (), f"an outcome on {label} breaker"
            )
            self.expect_envelope(
                api.get(f"/api/v1/breakers/{target}/permit/"), 403, (), f"a permit of {label}"
            )
        newline = self.outcome(mine, "lookups-db%0A", "failure")  # "lookups-db\n"
        self.expect_envelope(newline, 400, (), "a breaker name with a trailing newline")
        self.half_open_needs_a_probe(mine, name)
        created = 0
        for n in range(flood):
            created += self.outcome(mine, f"0-{self.run_id}-{n:04d}", "success").status_code == 200
        self.figures["breakers_created_by_one_client"] = created + 1
        self.check(created < flood, f"one client created {created + 1} breakers without a bound")
        self.crowded_dashboard(others)

    def half_open_needs_a_probe(self, api: httpx.Client, name: str) -> None:
        self.db.execute(
            "UPDATE breakers_breaker SET state = 'half_open', generation = generation + 1,"
            " probe_leases = '{}' WHERE name = %s",
            [name],
        )
        self.outcome(api, name, "success")
        state = self.one("SELECT state FROM breakers_breaker WHERE name = %s", [name])[0]
        self.check(state == "half_open", f"a success without a probe closed the breaker ({state})")
        deadline = time.monotonic() + 3  # every web process learns of the change (NOTIFY)
        permit = api.get(f"/api/v1/breakers/{name}/permit/").json()
        while permit.get("state") != "half_open" and time.monotonic() < deadline:
            time.sleep(0.05)
            permit = api.get(f"/api/v1/breakers/{name}/permit/").json()
        probe = self.outcome(api, name, "success", probe=permit.get("probe"))
        state = self.one("SELECT state FROM breakers_breaker WHERE name = %s", [name])[0]
        self.check(
            probe.status_code == 200 and state == "closed",
            f"the probe's success did not close it: {probe.status_code} {probe.text[:200]}",
        )

    def make_breakers(self, names: list[str], *, owner: str | None, open_: bool) -> None:
        """Breakers as the service creates them (``sql.ENSURE``): this service's own
        (``owner`` None) or a client's; open for an hour when ``open_``."""
        owner_id = None
        if owner is not None:
            owner_id = self.one("SELECT id FROM auth_user WHERE username = %s", [owner])[0]
        rows = [{**POLICY, "name": name, "owner_id": owner_id} for name in names]
        with self.db.cursor() as cursor:
            cursor.executemany(sql.ENSURE, rows)
        if open_:
            self.db.execute(
                "UPDATE breakers_breaker SET state = 'open', generation = generation + 1,"
                " opened_at = now(), open_until = now() + interval '1 hour'"
                " WHERE name = ANY(%s)",
                [names],
            )

    def crowded_dashboard(self, others: int) -> None:
        """Many clients' breakers, half of them open, named to sort before the real one."""
        self.make_breakers([SERVICE_BREAKER], owner=None, open_=True)
        crowd = [f"0-crowd-{n:05d}" for n in range(others)]
        self.make_breakers(crowd[0::2], owner="demo-client", open_=True)
        self.make_breakers(crowd[1::2], owner="demo-client", open_=False)
        (total,) = self.one("SELECT count(*) FROM breakers_breaker")
        ops = self.admin("demo-ops")
        page = ops.get("/admin/dashboard/").text
        box = page.split("Broken right now", 1)[-1].split("</ul>", 1)[0]
        listed = ops.get("/admin/breakers/openbreaker/").text
        ours, crowd = listed.find(f">{SERVICE_BREAKER}<"), listed.find(">0-crowd-")
        self.figures.update(breakers_present=total, dashboard_lists_service_breaker=0)
        if SERVICE_BREAKER in box:
            self.figures["dashboard_lists_service_breaker"] = 1
        self.check(
            SERVICE_BREAKER in box,
            f"with {total} breakers the open {SERVICE_BREAKER} is not in 'Broken right now'",
        )
        self.check(
            0 <= ours < crowd,
            f"{SERVICE_BREAKER} is not listed before the clients' breakers in Open breakers",
        )
        self.db.execute(
            "DELETE FROM breakers_breaker WHERE name LIKE %s OR name = %s",
            ["0-crowd-%", SERVICE_BREAKER],
        )


def run(
    stack: Stack,
    flood_requests: int = 200,
    label_requests: int = 1000,
    breaker_flood: int = 200,
    other_breakers: int = 1000,
) -> DrillResult:
    result = DrillResult("abuse")
    probe = AbuseProbe(stack, result)
    started = time.monotonic()
    try:
        probe.section("anonymous flood", lambda: probe.anonymous_flood(flood_requests))
        probe.section("label flood", lambda: probe.label_flood(label_requests))
        probe.section("breaker names", lambda: probe.breaker_names(breaker_flood, other_breakers))
        probe.section("secret shapes", probe.secret_shapes)
        probe.section("references", probe.references)
        probe.section("inputs that crashed", probe.inputs_that_crashed)
    finally:
        probe.close()
    result.figures.update(probe.figures)
    result.figures["seconds"] = round(time.monotonic() - started, 1)
    result.figures["run"] = os.environ.get("DRILL_RUN", uuid.uuid4().hex[:6])
    return result
