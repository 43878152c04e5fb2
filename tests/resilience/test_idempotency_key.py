"""A retried POST or PATCH carries the same idempotency key upstream on every attempt (and
at every provider of a group), under the header name its provider configures; a key the
caller gives is kept."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.resilience.client import ServiceClient
from controlplane.resilience.failover import client_for_group
from controlplane.resilience.providers import client_for
from controlplane.resilience.retry import RetryPolicy
from tests.resilience.flaky_server import Script, flaky_server
from tests.resilience.groups import GROUP

NO_WAIT = {"initial_delay": 0.01, "max_delay": 0.02, "jitter": "none", "deadline": 10}


def keys(script: Script, header: str = "idempotency-key") -> list[str | None]:
    return [seen.headers.get(header) for seen in script.seen]


def test_a_retried_post_sends_the_same_key_on_every_attempt(fresh_name: str) -> None:
    script = Script([(503, {}), (502, {}), (200, {})])
    with flaky_server(script) as url:
        client = ServiceClient(fresh_name, url, retry=RetryPolicy(max_attempts=3, **NO_WAIT))
        client.post("/v1/parse", json={"doc": 1})
        client.post("/v1/parse", json={"doc": 2})
    first, second = keys(script)[:3], keys(script)[3:]
    assert [seen.method for seen in script.seen] == ["POST"] * 4
    assert len(set(first)) == 1 and uuid.UUID(first[0])
    assert second != first[:1]  # another logical call, another key


def test_a_key_the_caller_gives_is_kept(fresh_name: str) -> None:
    script = Script([(503, {}), (200, {})])
    with flaky_server(script) as url:
        client = ServiceClient(fresh_name, url, retry=RetryPolicy(max_attempts=2, **NO_WAIT))
        client.request("PATCH", "/v1/doc", json={}, headers={"Idempotency-Key": "order-42"})
        client.request("PATCH", "/v1/doc", json={}, idempotency_key="order-43")
    assert keys(script) == ["order-42", "order-42", "order-43"]


def test_reads_carry_no_key(fresh_name: str) -> None:
    script = Script([(200, {})])
    with flaky_server(script) as url:
        ServiceClient(fresh_name, url).get("/v1/doc")
    assert keys(script) == [None]


def test_the_header_name_is_set_per_provider(upstream_group: Any) -> None:
    up = upstream_group(
        Script([(500, {}), (200, {})]),
        per_provider=[{"max_attempts": 2, "idempotency_header": "X-Request-Key"}],
    )
    client_for(up.names[0]).post("/v1/chat", json={})
    (script,) = up.scripts
    assert keys(script) == [None, None]
    custom = keys(script, "x-request-key")
    assert custom[0] and custom == [custom[0]] * 2


def test_every_provider_of_a_group_sees_the_same_key(upstream_group: Any) -> None:
    up = upstream_group(
        Script([(500, {})]), Script([(200, {})]), per_provider=[{"max_attempts": 2}, {}]
    )
    result = client_for_group(GROUP).post("/v1/chat", json={"q": "hi"})
    assert result.provider == up.names[1]
    first, second = up.scripts
    sent = keys(first) + keys(second)
    assert len(sent) == 3 and len(set(sent)) == 1 and sent[0]
