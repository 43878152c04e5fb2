"""ServiceClient: outgoing HTTP with a shared breaker and retries built in.

    client = ServiceClient("llamaparse", "https://api.llamaparse.example")
    response = client.request("POST", "/parse", json={...})

Each attempt runs through the breaker; failed attempts are retried by the
RetryPolicy when retryable (never into an open breaker) and granted by the
upstream's retry budget, shared by every process. A POST or PATCH carries an
``Idempotency-Key`` header (name per client), the same on every attempt, so an upstream
that saw a timed-out attempt can tell the retry is the same call; a key the caller gives
(``idempotency_key=`` or the header itself) is kept. The final failure
becomes a ``<SERVICE>_<KIND>_ERROR`` UserFacingError, recorded as an
ErrorRecord with the breaker's name and state, the upstream response
sanitised (status, scrubbed excerpt).

Each call is a child span of the current trace (a request's, a job's): every attempt
sends its W3C ``traceparent`` and the request's ``X-Request-Id``, and a failure's record
carries the same trace, span and request ids, so support can follow a support UUID into
the upstream's own logs and traces.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from controlplane.breakers.circuit import CircuitBreaker
from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.errors.exceptions import UpstreamError, UserFacingError
from controlplane.errors.recording import record_error
from controlplane.errors.scrubbing import default_scrubber
from controlplane.lib import correlation, tracing
from controlplane.resilience.budget import RetryBudget, RetryBudgetExhaustedError, budget_for
from controlplane.resilience.retry import (
    EarlierAttemptFailed,
    RetryPolicy,
    is_continuing,
    retry_after_of,
)

_EXCERPT = 500
# Methods a retry could apply twice upstream: they carry an idempotency key.
NON_IDEMPOTENT = frozenset({"POST", "PATCH"})
_refusals_wait: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "breaker_refusals_wait", default=False
)


@contextmanager
def refusals_wait() -> Iterator[None]:
    """Inside, a breaker refusal met before any call went out is not recorded: the caller
    (the jobs runner) waits for the breaker rather than showing an error, and says so where
    the wait is seen (the job's ``waiting_for`` and an event). A record per wait would
    grow with the wait, and its support_id would reach no one."""
    token = _refusals_wait.set(True)
    try:
        yield
    finally:
        _refusals_wait.reset(token)


def waited_for(exc: BaseException) -> bool:
    """Is ``exc`` a refusal the caller waits out (see :func:`refusals_wait`)?"""
    return (
        _refusals_wait.get()
        and isinstance(exc, CircuitOpenError)
        and not exc.context.get("attempts")
    )


def _body_excerpt(response: httpx.Response) -> Any:
    """The start of the upstream body, secrets removed (by key when it is JSON)."""
    scrubber = default_scrubber()
    try:
        body = response.json()
    except ValueError:
        return scrubber.text(response.text[:_EXCERPT])
    return scrubber.text(json.dumps(scrubber.scrub(body))[:_EXCERPT])


def classify(service: str, exc: BaseException) -> UserFacingError:
    """The user-facing error for a failed call to ``service``."""
    if isinstance(exc, UserFacingError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError(service, "TIMEOUT", original=exc)
    if isinstance(exc, httpx.TransportError):
        return UpstreamError(service, "NETWORK", original=exc)
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        status = response.status_code
        kind = (
            "AUTH"
            if status == 401
            else "PERMISSION"
            if status == 403
            else "RATE_LIMIT"
            if status == 429
            else "SERVER"
            if status >= 500
            else "UNEXPECTED"
        )
        scrubber = default_scrubber()
        context = {
            "upstream": {
                "status": status,
                "method": response.request.method,
                "url": scrubber.text(str(response.request.url)),
                "headers": scrubber.scrub(dict(response.headers)),
                "body_excerpt": _body_excerpt(response),
            }
        }
        return UpstreamError(
            service,
            kind,
            upstream_status=status,
            retry_after=retry_after_of(exc),
            context=context,
            original=exc,
            technical_message=f"{context['upstream']['method']} {context['upstream']['url']}"
            f" answered {status}",
        )
    return UpstreamError(service, "UNEXPECTED", original=exc)


def _summary(error: UserFacingError) -> dict[str, Any]:
    """An earlier failure, as kept in the final error's record."""
    return {"code": error.code, "message": error.technical_message, **error.context}


def _path_of(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:  # a malformed URL: the request itself will say so
        return ""


class ServiceClient:
    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        timeout: float = 10.0,
        breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
        idempotency_header: str = "Idempotency-Key",
        budget: RetryBudget | None = None,
    ) -> None:
        self.service = service
        self.idempotency_header = idempotency_header
        self.base_url = base_url
        self.breaker = breaker or CircuitBreaker(service)
        self.retry = retry or RetryPolicy.from_settings()
        self.budget = budget or budget_for(service)
        self.on_retry = on_retry
        self._options = {"base_url": base_url, "timeout": timeout, "headers": headers or {}}
        self._client = httpx.Client(**self._options, transport=transport)
        self._async_transport = async_transport
        self._aclient: httpx.AsyncClient | None = None

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        response = self._client.request(method, url, **kwargs)
        response.raise_for_status()
        return response

    def _noting(self, earlier: list[BaseException]) -> Callable[[int, BaseException, float], None]:
        """on_retry that also keeps each retried failure, for the final record."""

        def note(attempt: int, exc: BaseException, delay: float) -> None:
            earlier.append(exc)
            if self.on_retry:
                self.on_retry(attempt, exc, delay)

        return note

    def _with_idempotency_key(
        self, method: str, key: str | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """``kwargs`` with the idempotency header for a non-idempotent method: the
        caller's header if set, else ``key``, else a fresh one. Built once per logical
        call, so every attempt sends the same value."""
        if method.upper() not in NON_IDEMPOTENT:
            return kwargs
        headers = httpx.Headers(kwargs.get("headers"))
        if self.idempotency_header not in headers:
            headers[self.idempotency_header] = key or str(uuid.uuid4())
        return {**kwargs, "headers": headers}

    def _correlated(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the current span's ``traceparent`` and the request id (a
        caller's own X-Request-Id is kept); inside the call's span, once per call."""
        headers = httpx.Headers(kwargs.get("headers"))
        tracing.inject(headers)
        request_id = correlation.request_id()
        if request_id and correlation.REQUEST_ID_HEADER not in headers:
            headers[correlation.REQUEST_ID_HEADER] = request_id
        return {**kwargs, "headers": headers}

    def _span(self, method: str, url: str) -> Any:
        # The path only: a query string or userinfo may carry secrets, and spans leave
        # the process unscrubbed when they are exported.
        return tracing.client_span(
            f"{self.service} {method.upper()}",
            **{
                "peer.service": self.service,
                "http.request.method": method.upper(),
                "url.path": _path_of(url),
            },
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        record: bool = True,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        kwargs = self._with_idempotency_key(method, idempotency_key, kwargs)
        earlier: list[BaseException] = []
        with self._span(method, url):
            kwargs = self._correlated(kwargs)
            self._refuse_before_retry(record)
            try:
                return self.retry.call(
                    lambda: self.breaker.call(self._send, method, url, kwargs),
                    on_retry=self._noting(earlier),
                    budget=self.budget,
                )
            except Exception as exc:
                raise self._fail(exc, record, earlier) from exc

    async def arequest(
        self,
        method: str,
        url: str,
        *,
        record: bool = True,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        kwargs = self._with_idempotency_key(method, idempotency_key, kwargs)
        with self._span(method, url):
            kwargs = self._correlated(kwargs)
            return await self._arequest(method, url, record, kwargs)

    async def _arequest(
        self, method: str, url: str, record: bool, kwargs: dict[str, Any]
    ) -> httpx.Response:
        if is_continuing():  # may read the breaker's row: off the event loop
            await asyncio.to_thread(self._refuse_before_retry, record)
        if self._aclient is None:
            self._aclient = httpx.AsyncClient(**self._options, transport=self._async_transport)
        client = self._aclient

        async def send() -> httpx.Response:
            response = await client.request(method, url, **kwargs)
            response.raise_for_status()
            return response

        earlier: list[BaseException] = []
        try:
            return await self.retry.acall(
                lambda: self.breaker.acall(send), on_retry=self._noting(earlier), budget=self.budget
            )
        except Exception as exc:
            raise self._fail(exc, record, earlier) from exc

    def _refuse_before_retry(self, record: bool) -> None:
        """A continued call (a job's later attempt) spends a retry before it is sent: ask the
        breaker first, so waiting for it costs the budget nothing."""
        if is_continuing():
            refusal = self.breaker.refusal()
            if refusal is not None:
                raise self._fail(refusal, record, [])

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def _fail(
        self, exc: BaseException, record: bool, earlier: list[BaseException]
    ) -> UserFacingError:
        error = classify(self.service, exc)
        # Calls that reached the upstream: a breaker refusal is not one, nor is a continued
        # call the budget refused before sending it (any other retry the budget refused
        # follows one that did). Failover reports it per provider, and support reads it on
        # the record.
        unsent = getattr(exc, "original", None)
        refused = isinstance(exc, CircuitOpenError) or isinstance(unsent, EarlierAttemptFailed)
        error.context.setdefault("attempts", len(earlier) + (0 if refused else 1))
        if isinstance(exc, CircuitOpenError | RetryBudgetExhaustedError) and earlier:
            # The breaker opened between attempts, or the budget refused a retry: say what
            # the upstream did before, or support sees only the refusal (flapping drill).
            error.context["earlier_attempts"] = [
                _summary(classify(self.service, e)) for e in earlier
            ]
        if isinstance(unsent, EarlierAttemptFailed):
            error.context["refused_failure"] = {"message": str(unsent)}
        elif isinstance(exc, RetryBudgetExhaustedError) and exc.original is not None:
            error.context["refused_failure"] = _summary(classify(self.service, exc.original))
        if record and not waited_for(error):
            state = exc.breaker_state if isinstance(exc, CircuitOpenError) else self.breaker.state
            record_error(
                error, service=self.service, breaker_name=self.breaker.name, breaker_state=state
            )
        return error
