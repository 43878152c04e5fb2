"""What a breaker raises when it refuses a call."""

from __future__ import annotations

from controlplane.errors.exceptions import ServiceUnavailableError, service_code_prefix


class CircuitOpenError(ServiceUnavailableError):
    """The breaker refused the call; ``retry_after`` says when to try again."""

    def __init__(self, name: str, retry_after: float | None, state: str) -> None:
        super().__init__(
            "A service we depend on is temporarily unavailable; please retry later.",
            code=f"{service_code_prefix(name)}_CIRCUIT_OPEN",
            retry_after=None if retry_after is None else max(0.0, round(retry_after, 3)),
            technical_message=f"circuit breaker {name!r} is {state}",
            metadata={"breaker": name, "state": state},
        )
        self.breaker_name = name
        self.breaker_state = state
