"""Each test starts with unspent retry budgets, those of cached provider clients included
(tests/conftest.py, ``_fresh_retry_budgets``): a client built by an earlier test must not
carry that test's spent retries into the next one."""

from __future__ import annotations

from typing import Any

from controlplane.resilience.providers import client_for
from tests.conftest import forget_retry_budgets


def test_a_cached_provider_client_gets_a_fresh_budget(settings: Any) -> None:
    settings.PROVIDERS = {"isolated-upstream": {"mode": "mock"}}
    spent = client_for("isolated-upstream").budget
    while spent.spend_retry():  # an earlier test that used up the budget
        pass
    assert client_for("isolated-upstream").budget is spent  # clients are cached

    forget_retry_budgets()  # what every test starts with

    fresh = client_for("isolated-upstream").budget
    assert fresh is not spent
    assert fresh.totals().retries == 0 and fresh.spend_retry()
