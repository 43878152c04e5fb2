"""With the database stopped, a token that authenticated before the stop keeps working from
the auth cache (its groups too), while a token revoked, a user deactivated or a group
membership removed before the stop is never accepted; once the database is back, the
database decides again.

A real PostgreSQL of the test's own is stopped under a child process that answers
through the whole Django stack (tests/outage.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.outage import Child, OwnServer, child_of, code, own_server  # noqa: F401

pytestmark = pytest.mark.slow

LOOKUP = "/api/v1/lookups/auth-outage-service/"
WARM = "/api/v1/lookups/warm/"
USERS = {"kept": "clients", "revoked": "clients", "deactivated": "clients", "demoted": "clients"}


def test_tokens_held_before_the_stop_work_and_revoked_ones_never_do(
    own_server: OwnServer,  # noqa: F811
    child_of: Any,  # noqa: F811
) -> None:
    child: Child = child_of()
    made = child.do(
        "setup",
        users={f"auth-{name}": group for name, group in USERS.items()},
        services=["auth-outage-service"],
    )
    tokens = {name: made["tokens"][f"auth-{name}"] for name in USERS}
    for token in tokens.values():  # each token authenticated (and cached) before the stop
        assert child.get(LOOKUP, token)["status"] == 200
    never_used = child.do("setup", users={"auth-never-used": "clients"}, services=[])

    # Changes committed by another process, then the database stops at once.
    own_server.execute("DELETE FROM authtoken_token WHERE key = %s", [tokens["revoked"]])
    own_server.execute(
        "UPDATE auth_user SET is_active = false WHERE username = %s", ["auth-deactivated"]
    )
    own_server.execute(
        "DELETE FROM auth_user_groups WHERE user_id = (SELECT id FROM auth_user"
        " WHERE username = %s)",
        ["auth-demoted"],
    )
    own_server.stop()
    child.do("wait_lost")

    kept = child.get(LOOKUP, tokens["kept"])
    assert kept["status"] == 200, kept
    assert kept["body"]["stale"] is True
    # Its groups come from the cache too: ops-only is refused without a query, not 503.
    refused = child.post(WARM, tokens["kept"], {})
    assert (refused["status"], code(refused)) == (403, "PERMISSION_DENIED"), refused
    for name in ("revoked", "deactivated", "demoted"):
        answer = child.get(LOOKUP, tokens[name])
        assert (answer["status"], code(answer)) == (503, "DATABASE_UNAVAILABLE"), (name, answer)
    unseen = child.get(LOOKUP, never_used["tokens"]["auth-never-used"])
    assert (unseen["status"], code(unseen)) == (503, "DATABASE_UNAVAILABLE"), unseen

    own_server.start()
    child.do("wait_back")
    assert child.get(LOOKUP, tokens["kept"])["status"] == 200
    assert code(child.get(LOOKUP, tokens["revoked"])) == "AUTHENTICATION_FAILED"
    assert code(child.get(LOOKUP, tokens["deactivated"])) == "AUTHENTICATION_FAILED"
    assert code(child.get(LOOKUP, tokens["demoted"])) == "PERMISSION_DENIED"


def test_a_held_token_is_not_accepted_when_the_stale_limit_is_zero(
    own_server: OwnServer,  # noqa: F811
    child_of: Any,  # noqa: F811
) -> None:
    child: Child = child_of(AUTH_STALE_IF_ERROR_SECONDS="0")
    made = child.do("setup", users={"auth-no-stale": "clients"}, services=[])
    token = made["tokens"]["auth-no-stale"]
    assert child.get("/api/v1/", token)["status"] == 200
    own_server.stop()
    child.do("wait_lost")
    answer = child.get("/api/v1/", token)
    assert (answer["status"], code(answer)) == (503, "DATABASE_UNAVAILABLE"), answer
