"""1. Authentication and groups, for every operation in /api/schema/: no token -> 401,
a bad token -> 401, a user in no group -> 403; the group matrix (each role refused where
it has no right, *not* refused where it has one); job kinds reserved for ops; a client
cannot see or cancel another client's job."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.reliability.drills.security.common import (
    ANY_GROUP,
    CLIENT,
    CLIENTS,
    OPS,
    OPS_ONLY,
    SUPPORT,
    SUPPORTS,
    Operation,
    Probe,
    where,
)
from tests.reliability.drills.stack import ROLES

PUBLIC = frozenset({("get", "/api/v1/health/")})
# Who may call each documented operation, read from the permission classes:
ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    # controlplane/errors/api.py
    ("get", "/api/v1/errors/"): SUPPORTS,  # ErrorListCreateView: GET IsSupport
    ("post", "/api/v1/errors/"): CLIENTS,  # ErrorListCreateView: POST IsClient
    ("get", "/api/v1/errors/{support_id}/"): SUPPORTS,  # ErrorDetailView
    # controlplane/breakers/api.py
    ("get", "/api/v1/breakers/"): ANY_GROUP,  # BreakerListView: IsAnyGroup
    ("get", "/api/v1/breakers/{name}/"): ANY_GROUP,  # BreakerDetailView: IsAnyGroup
    ("post", "/api/v1/breakers/{name}/reset/"): OPS_ONLY,  # _OverrideView: IsOps
    ("post", "/api/v1/breakers/{name}/force-open/"): OPS_ONLY,
    ("post", "/api/v1/breakers/{name}/disable/"): OPS_ONLY,
    ("post", "/api/v1/breakers/{name}/outcomes/"): CLIENTS,  # OutcomeView: IsClient
    ("get", "/api/v1/breakers/{name}/permit/"): CLIENTS,  # PermitView: IsClient
    # lookups/api.py
    ("get", "/api/v1/lookups/{slug}/"): CLIENTS,  # LookupView: IsClient
    ("post", "/api/v1/lookups/batch/"): CLIENTS,  # BatchView: IsClient
    ("get", "/api/v1/lookups/stats/"): SUPPORTS,  # StatsView: IsSupport
    ("post", "/api/v1/lookups/warm/"): OPS_ONLY,  # WarmView: IsOps
    ("post", "/api/v1/lookups/clear/"): OPS_ONLY,  # ClearView: IsOps
    ("get", "/api/v1/micro-services/"): ANY_GROUP,  # _RegistryView: reads _AnyGroup
    ("post", "/api/v1/micro-services/"): OPS_ONLY,  # _RegistryView: writes IsOps
    ("get", "/api/v1/micro-services/{slug}/"): ANY_GROUP,
    ("put", "/api/v1/micro-services/{slug}/"): OPS_ONLY,
    ("patch", "/api/v1/micro-services/{slug}/"): OPS_ONLY,
    ("delete", "/api/v1/micro-services/{slug}/"): OPS_ONLY,
    # jobs/api.py
    ("get", "/api/v1/jobs/"): ANY_GROUP,  # JobListCreateView: GET IsClient | IsSupport
    ("post", "/api/v1/jobs/"): CLIENTS,  # JobListCreateView: POST IsClient
    ("post", "/api/v1/jobs/batch/"): CLIENTS,  # JobBatchView: IsClient
    ("get", "/api/v1/jobs/{job_id}/"): ANY_GROUP,  # JobDetailView: IsClient | IsSupport
    ("post", "/api/v1/jobs/{job_id}/cancel/"): CLIENTS,  # JobCancelView: IsClient
}
# Job kinds reserved for some groups (jobs/kinds.py, job_handler(groups=...)).
OPS_JOB_KINDS = ("lookups.warm", "lookups.backfill")

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


class AccessProbe(Probe):
    # --- 1. authentication, groups, ownership ----------------------------------------------

    def operations(self) -> list[Operation]:
        response = self.api(None).get(
            "/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"}
        )
        if not self.check(response.status_code == 200, f"/api/schema/: {response.status_code}"):
            return []
        found = []
        for template, item in response.json()["paths"].items():
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    public = {} in operation.get("security", [])
                    found.append(Operation(method, template, public))
        return sorted(found, key=lambda op: op.key)

    def concrete(self, template: str) -> str:
        samples = {
            "support_id": str(uuid.uuid4()),
            "job_id": str(uuid.uuid4()),
            "name": f"security-drill-probe-{self.run_id}",
            "slug": f"security-drill-probe-{self.run_id}",
        }
        return re.sub(r"\{(\w+)\}", lambda m: samples[m.group(1)], template)

    @staticmethod
    def call(api: httpx.Client, method: str, path: str) -> httpx.Response:
        if method in ("post", "put", "patch"):
            return api.request(method.upper(), path, json={})
        return api.request(method.upper(), path)

    def authentication(self) -> None:
        self.ops = ops = self.operations()
        self.figures["operations_probed"] = len(ops)
        self.check(len(ops) >= 20, f"the schema lists only {len(ops)} operations")
        listed = {op.key for op in ops}
        for key in sorted(listed - set(ALLOWED) - PUBLIC):
            self.result.failures.append(f"{key} is in the schema but not in the drill's matrix")
        for key in sorted((set(ALLOWED) | PUBLIC) - listed):
            self.result.failures.append(f"{key} is in the drill's matrix but not in the schema")
        public = {op.key for op in ops if op.public}
        self.check(public == PUBLIC, f"the schema marks {sorted(public)} public, not {PUBLIC}")

        bad = httpx.Client(
            base_url=self.stack.base_url,
            headers={"Authorization": f"Token {uuid.uuid4().hex}"},
            timeout=60,
        )
        self.clients["bad-token"] = bad
        for op in ops:
            path = self.concrete(op.template)
            response = self.call(self.api(None), op.method, path)
            if op.key in PUBLIC:
                self.check(
                    response.status_code in (200, 503),
                    f"public {where(response)} without a token: {response.status_code}",
                )
                continue
            if self.expect_envelope(response, 401, "NOT_AUTHENTICATED", "no token"):
                self.figures["unauthenticated_401"] += 1
            self.check(
                response.headers.get("WWW-Authenticate", "").startswith("Token"),
                f"{where(response)}: 401 without 'WWW-Authenticate: Token'",
            )
            response = self.call(bad, op.method, path)
            if self.expect_envelope(response, 401, "AUTHENTICATION_FAILED", "unknown token"):
                self.figures["bad_token_401"] += 1
        # Undocumented, but routed: the API root.
        response = self.api(None).get("/api/v1/")
        if self.expect_envelope(response, 401, "NOT_AUTHENTICATED", "no token"):
            self.figures["unauthenticated_401"] += 1
        # Control: the demo tokens do authenticate.
        for role in ROLES:
            response = self.api(role).get("/api/v1/jobs/")
            self.check(response.status_code == 200, f"{role} GET /api/v1/jobs/: {response.text}")

    def create_users(self) -> dict[str, str]:
        """A user in no group and a second client, each with a token (idempotent)."""
        code = (
            "from django.contrib.auth import get_user_model\n"
            "from django.contrib.auth.models import Group\n"
            "from rest_framework.authtoken.models import Token\n"
            "User = get_user_model()\n"
            "for name, groups in (('security-drill-nobody', []),"
            " ('security-drill-other-client', ['clients'])):\n"
            "    user, _ = User.objects.get_or_create(username=name)\n"
            "    user.is_staff = user.is_superuser = False\n"
            "    user.set_unusable_password()\n"
            "    user.save()\n"
            "    user.groups.set(Group.objects.filter(name__in=groups))\n"
            "    token, _ = Token.objects.get_or_create(user=user)\n"
            "    print('TOKEN', name, token.key)\n"
        )
        output = self.stack.manage("shell", "-c", code)
        return {
            line.split()[1]: line.split()[2]
            for line in output.splitlines()
            if line.startswith("TOKEN ")
        }

    def groups(self) -> None:
        tokens = self.create_users()
        nobody = self.token_api(tokens["security-drill-nobody"])
        for op in self.ops:
            if op.key in PUBLIC:
                continue
            response = self.call(nobody, op.method, self.concrete(op.template))
            if self.expect_envelope(response, 403, "PERMISSION_DENIED", "user in no group"):
                self.figures["no_group_403"] += 1
        # Control: the token is valid; only the group is missing.
        response = nobody.get("/api/v1/")
        self.check(response.status_code == 200, f"no-group user GET /api/v1/: {response.text}")

        for op in self.ops:
            if op.key not in ALLOWED:
                continue
            for role in (CLIENT, SUPPORT, OPS):
                response = self.call(self.api(role), op.method, self.concrete(op.template))
                if role in ALLOWED[op.key]:
                    # Past the group check: anything but a 401 or a PERMISSION_DENIED 403
                    # (a breaker of another client's is BREAKER_NOT_OWNED: the group passed).
                    if self.check(
                        not refused_by_group(response),
                        f"{role} may call {op.key} but got {response.status_code}: "
                        f"{response.text[:200]}",
                    ):
                        self.figures["matrix_permitted"] += 1
                elif self.expect_envelope(
                    response, 403, "PERMISSION_DENIED", f"{role} on {op.key}"
                ):
                    self.figures["matrix_refusals"] += 1

        # Job kinds reserved for ops: refused for clients (and support), created for ops.
        for kind in OPS_JOB_KINDS:
            body = {"kind": kind, "payload": {"slugs": [], "batch_size": 1}}
            response = self.api(CLIENT).post("/api/v1/jobs/", json=body)
            if self.expect_envelope(response, 403, "JOB_KIND_FORBIDDEN", f"client job {kind}"):
                self.figures["matrix_refusals"] += 1
            response = self.api(SUPPORT).post("/api/v1/jobs/", json=body)
            if self.expect_envelope(response, 403, "PERMISSION_DENIED", f"support job {kind}"):
                self.figures["matrix_refusals"] += 1
        response = self.api(OPS).post(
            "/api/v1/jobs/", json={"kind": "lookups.warm", "payload": {"slugs": ["x"]}}
        )
        if self.check(response.status_code == 201, f"ops job lookups.warm: {response.text}"):
            self.figures["matrix_permitted"] += 1
            self.wait_job(response.json()["id"], "the ops lookups.warm job")

        # Ownership: another client neither sees nor cancels demo-client's job.
        other = self.token_api(tokens["security-drill-other-client"])
        created = self.api(CLIENT).post(
            "/api/v1/jobs/", json={"kind": "demo.sleep", "payload": {"seconds": 0}}
        )
        if not self.check(created.status_code == 201, f"client job: {created.text}"):
            return
        job_id = created.json()["id"]
        for response in (
            other.get(f"/api/v1/jobs/{job_id}/"),
            other.post(f"/api/v1/jobs/{job_id}/cancel/"),
        ):
            if self.expect_envelope(response, 404, "JOB_NOT_FOUND", "another client's job"):
                self.figures["ownership_refusals"] += 1
        listed = other.get("/api/v1/jobs/", params={"page_size": 200})
        if self.check(
            listed.status_code == 200
            and job_id not in {job["id"] for job in listed.json()["results"]},
            f"another client's job list shows {job_id}: {listed.text[:200]}",
        ):
            self.figures["ownership_refusals"] += 1
        own = self.api(CLIENT).get(f"/api/v1/jobs/{job_id}/")
        self.check(own.status_code == 200, f"the owner cannot read its job: {own.text}")


def refused_by_group(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    if response.status_code != 403:
        return False
    try:
        return response.json()["error"]["code"] == "PERMISSION_DENIED"
    except (ValueError, KeyError, TypeError):
        return True
