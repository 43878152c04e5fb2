from __future__ import annotations

from controlplane.health.probes import probe_all


def probe_providers() -> dict[str, str]:
    return probe_all()
