"""Schemathesis checks of our own, loaded with SCHEMATHESIS_HOOKS by the fuzz drill.

Every error response must be the envelope, and its support_id must resolve
(GET /api/v1/errors/{id}/ as support staff) — DESIGN.md invariant 1, checked on
whatever the fuzzer managed to provoke.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis

from tests.reliability.drills import envelope_of

# The health endpoint's 503 is its own report (which checks failed), not an error.
OWN_REPORTS = {("GET", "/api/v1/health/")}

_resolver = httpx.Client(timeout=30)


@schemathesis.check
def error_envelope_resolves(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code < 400 or (case.method.upper(), case.path) in OWN_REPORTS:
        return None
    try:
        error = envelope_of(response.json())
    except ValueError:
        error = None
    if error is None:
        raise AssertionError(
            f"{response.status_code} is not the error envelope (its keys, a UUID support_id,"
            f" a message ending with its reference): {response.text[:300]!r}"
        )
    support_id = error["support_id"]
    found = _resolver.get(
        f"{os.environ['DRILL_BASE_URL']}/api/v1/errors/{support_id}/",
        headers={"Authorization": f"Token {os.environ['DRILL_SUPPORT_TOKEN']}"},
    )
    if found.status_code != 200:
        raise AssertionError(f"support_id {support_id} does not resolve: {found.status_code}")
    return True
