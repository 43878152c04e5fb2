"""Security probes over real HTTP against the running service.

1. Authentication and groups, for every operation in /api/schema/: no token -> 401
   envelope (health is public), a bad token -> 401, a user in no group -> 403; then the
   group matrix in access.py (derived from the permission classes of the api modules): each
   role refused where it has no right (403 envelope) and *not* refused where it has
   one (the control); job kinds reserved for ops; a client cannot see or cancel
   another client's job.
2. Admin actions refused for support staff, logged in over HTTP (session + CSRF):
   breaker reset (changelist action with its override form, the open-breakers view,
   the ops dashboard), job cancel (action and change form), cache warm, and the same
   through the API with a token and with the admin session. The database must be
   unchanged after each attempt; the same actions by demo-ops take effect (control).
3. A secret sent in error reports (context keys, nested, headers, message text,
   URLs) and in requests that fail (400, 401, 403 CSRF, malformed JSON, a failing job)
   never appears in any table (``t::text LIKE``) nor in the stack's log and spool
   files; a marker sent alongside is found by the same grep (the control).
4. Injection strings in slugs (refused, 400/404 envelopes), error reports, job
   payloads and Idempotency-Keys, micro-service names and breaker reasons are stored
   verbatim and rendered escaped in the admin pages support sees (change pages,
   changelists, searches), and every table is still there at the end.
"""

from __future__ import annotations

from tests.reliability.drills import DrillResult
from tests.reliability.drills.security.access import AccessProbe
from tests.reliability.drills.security.admin import AdminProbe
from tests.reliability.drills.security.injection import InjectionProbe
from tests.reliability.drills.security.secrets import SecretProbe
from tests.reliability.drills.stack import Stack

__all__ = ["SecurityProbe", "run"]


class SecurityProbe(AccessProbe, AdminProbe, SecretProbe, InjectionProbe):
    """All four areas over one shared state (users, sessions, the drill's breaker)."""


def run(stack: Stack) -> DrillResult:
    result = DrillResult("security")
    # Jobs left by earlier drills (cache warms among them) would change what is counted.
    result.figures["leftover_jobs_cancelled"] = stack.cancel_leftover_jobs()
    probe = SecurityProbe(stack, result)
    try:
        probe.section("authentication", probe.authentication)
        probe.section("groups", probe.groups)
        probe.section("admin actions", probe.admin_actions)
        probe.section("secrets", probe.secrets)
        probe.section("injections", probe.injections)
        probe.section("tables", probe.tables_intact)
    finally:
        probe.close()
    result.figures.update(probe.figures)
    return result
