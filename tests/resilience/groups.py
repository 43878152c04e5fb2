"""A provider group of real upstreams on 127.0.0.1, for failover and fallback tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from controlplane.resilience import last_good, providers
from tests.resilience.flaky_server import Script, flaky_server

GROUP = "llm"
# Retries without waiting: the tests count requests, not time.
FAST_RETRIES = {"initial_delay": 0.01, "max_delay": 0.02, "jitter": "none", "deadline": 10}


@dataclass
class Upstreams:
    names: list[str]  # provider names, in configured order
    scripts: list[Script]

    def requests(self) -> list[int]:
        return [script.requests for script in self.scripts]


def provider_entry(url: str, **options: Any) -> dict[str, Any]:
    return {
        "base_url": url,
        "mode": "real",
        "timeout": 2,
        "max_attempts": 1,
        "client_calls": ["GET /v1/*", "POST /v1/*"],
        **options,
    }


@pytest.fixture
def upstream_group(fresh_name: str, settings: Any) -> Iterator[Callable[..., Upstreams]]:
    """``upstream_group(script_a, script_b, fallback=..., per_provider=[{...}, {...}])``:
    one real server per script, configured as providers of group "llm" (list form when no
    group options are given, dict form otherwise)."""
    stack = ExitStack()

    def configure(
        *scripts: Script,
        per_provider: list[dict[str, Any]] | None = None,
        **group_options: Any,
    ) -> Upstreams:
        names = [f"{fresh_name}-{index}" for index in range(len(scripts))]
        urls = [stack.enter_context(flaky_server(script)) for script in scripts]
        options = per_provider or [{} for _ in scripts]
        settings.PROVIDERS = {
            name: provider_entry(url, **extra)
            for name, url, extra in zip(names, urls, options, strict=True)
        }
        settings.PROVIDER_GROUPS = {
            GROUP: {"providers": names, **group_options} if group_options else names
        }
        settings.RETRY_DEFAULTS = {**settings.RETRY_DEFAULTS, **FAST_RETRIES}
        providers._clients.clear()
        return Upstreams(names, list(scripts))

    with stack:
        yield configure
        last_good.writer.stop()  # its connection must not outlive the test database
    providers._clients.clear()


@pytest.fixture
def health_of(settings: Any) -> Iterator[Callable[[dict[str, str]], None]]:
    """Inject each provider's latest health (what the health app's probes would say)."""
    installed = providers._health_reader
    yield lambda statuses: providers.set_health_reader(lambda: dict(statuses))
    providers.set_health_reader(installed)
