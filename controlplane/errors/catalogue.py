"""Every error code this service emits: its HTTP status, type, whether to retry, what the
client should do, and where it can appear.

One table, read by the OpenAPI document (``controlplane.openapi``: a component and each
operation's error responses), by the README's catalogue (``manage.py error_codes``), by
``record_error`` (a code missing here is logged), and by the tests (a code raised anywhere
in the code and missing here fails them). Codes built from a name, such as
``LLAMAPARSE_TIMEOUT_ERROR``, are registered once as a pattern (``<SERVICE>_TIMEOUT_ERROR``).

Where a code appears (``where``): ``response`` is an error envelope with that HTTP status;
``job`` is a job's ``error.code`` (the job is read with 200; ``status`` is then the status
of the error record); ``item`` is an entry of a 200 batch answer; ``reason`` is the
``reason.code`` of a 200 lookup answer served stale or as the slug-only fallback.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import re
from dataclasses import dataclass

logger = logging.getLogger("controlplane.errors")

# What a client should do, in words every entry uses.
RECOVERIES = {
    "fix_request": "change the request and send it again; retrying it unchanged fails again",
    "abort": "give up on this input: it can never succeed as sent",
    "authenticate": "send a valid API token (Authorization: Token <key>)",
    "request_access": "ask ops for the group this needs; retrying does not help",
    "retry_later": "retry after Retry-After seconds (or with backoff); nothing was changed",
    "fallback": "carry on without this answer (e.g. with the slug only), or retry later",
    "wait": "nothing: the job waits on its own and shows why",
    "contact_support": "quote the reference to support; retrying is unlikely to help",
}
WHERE = ("response", "job", "item", "reason")
AUTHENTICATED = "AUTH /api/v1/*"  # every operation that requires a token
BODY = "BODY /api/v1/*"  # every operation that reads a JSON body
EVERY = "* /api/v1/*"
# A single create and a batch (whose items answer with a single create's codes).
JOB_CREATE = ("POST /api/v1/jobs/", "POST /api/v1/jobs/batch/")


@dataclass(frozen=True)
class ErrorCode:
    code: str  # exact, or a pattern with one <NAME> placeholder
    status: int
    type: str
    retryable: bool
    recovery: str
    description: str
    operations: tuple[str, ...] = ()  # "METHOD /path" globs of the OpenAPI operations
    where: tuple[str, ...] = ("response",)

    @property
    def is_pattern(self) -> bool:
        return "<" in self.code

    def matches(self, code: str) -> bool:
        if not self.is_pattern:
            return code == self.code
        return _pattern(self.code).fullmatch(code) is not None


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"<[A-Z]+>", "[A-Z0-9_]+", re.escape(template)))


def _upstream(kind: str, status: int, retryable: bool, description: str) -> ErrorCode:
    return ErrorCode(
        f"<SERVICE>_{kind}_ERROR",
        status,
        "upstream_error",
        retryable,
        "retry_later" if retryable else "contact_support",
        description,
        where=("job",),
    )


CATALOGUE: tuple[ErrorCode, ...] = (
    # --- any operation ---------------------------------------------------------------
    ErrorCode("INVALID_REQUEST", 400, "invalid_request", False, "fix_request",
              "The body or parameters are invalid; metadata.fields says which.", (EVERY,)),
    ErrorCode("PARSE_ERROR", 400, "invalid_request", False, "fix_request",
              "The body is not JSON, or nests more than 64 levels.", (BODY,)),
    ErrorCode("UNSUPPORTED_MEDIA_TYPE", 415, "invalid_request", False, "fix_request",
              "The body is not application/json.", (BODY,)),
    ErrorCode("NOT_ACCEPTABLE", 406, "invalid_request", False, "fix_request",
              "The Accept header asks for a format the API cannot produce.", (EVERY,)),
    ErrorCode("PAYLOAD_TOO_LARGE", 413, "invalid_request", False, "fix_request",
              "The body is over the documented size limit.", (BODY,)),
    ErrorCode("NOT_AUTHENTICATED", 401, "authentication_error", False, "authenticate",
              "No credentials were sent.", (AUTHENTICATED,)),
    ErrorCode("AUTHENTICATION_FAILED", 401, "authentication_error", False, "authenticate",
              "The token is unknown, revoked, or its user is inactive.", (AUTHENTICATED,)),
    ErrorCode("UNAUTHORIZED", 401, "authentication_error", False, "authenticate",
              "Authentication is required."),
    ErrorCode("PERMISSION_DENIED", 403, "permission_error", False, "request_access",
              "The user is not in a group this operation allows.", (AUTHENTICATED,)),
    ErrorCode("FORBIDDEN", 403, "permission_error", False, "request_access",
              "The request is not allowed."),
    ErrorCode("CSRF_FAILED", 403, "permission_error", False, "authenticate",
              "A session (browser) request without a valid CSRF token; API clients use a "
              "token instead.", (BODY,)),
    ErrorCode("NOT_FOUND", 404, "not_found", False, "fix_request",
              "No such record, or a list's cursor is invalid.",
              ("GET /api/v1/errors/{support_id}/", "GET /api/v1/errors/", "GET /api/v1/jobs/",
               "GET /api/v1/micro-services/", "GET /api/v1/breakers/")),
    ErrorCode("METHOD_NOT_ALLOWED", 405, "invalid_request", False, "fix_request",
              "The path does not take this HTTP method."),
    ErrorCode("CONFLICT", 409, "conflict", False, "fix_request",
              "The request conflicts with the current state."),
    ErrorCode("VALIDATION_ERROR", 422, "validation_error", False, "fix_request",
              "Well-formed input that cannot be processed."),
    ErrorCode("RATE_LIMITED", 429, "rate_limit_error", True, "retry_later",
              "Too many requests (no operation throttles today; reserved)."),
    ErrorCode("SERVICE_UNAVAILABLE", 503, "service_unavailable", True, "retry_later",
              "Temporarily unavailable."),
    ErrorCode("DATABASE_UNAVAILABLE", 503, "service_unavailable", True, "retry_later",
              "The database is unreachable; Retry-After says when to try again. The error "
              "record is spooled and findable once the database is back.", (AUTHENTICATED,),
              where=("response", "job")),
    ErrorCode("DATABASE_ERROR", 500, "internal_error", False, "contact_support",
              "The database refused a statement.", (EVERY,)),
    ErrorCode("INTERNAL_ERROR", 500, "internal_error", False, "contact_support",
              "An unexpected error; the reference finds its traceback.", (EVERY,)),
    # --- errors ----------------------------------------------------------------------
    ErrorCode("CONTEXT_TOO_LARGE", 413, "invalid_request", False, "fix_request",
              "A reported error's context is over ERROR_CONTEXT_MAX_BYTES.",
              ("POST /api/v1/errors/",)),
    ErrorCode("SUPPORT_ID_TAKEN", 409, "conflict", False, "fix_request",
              "A reported error reuses a support_id already stored for other content.",
              ("POST /api/v1/errors/",)),
    # --- breakers --------------------------------------------------------------------
    ErrorCode("BREAKER_NOT_FOUND", 404, "not_found", False, "fix_request",
              "No breaker with this name.", ("* /api/v1/breakers/{name}/*",)),
    ErrorCode("INVALID_BREAKER_NAME", 400, "invalid_request", False, "fix_request",
              "A breaker name must be 1-100 letters, digits, '.', '_' or '-'.",
              ("* /api/v1/breakers/{name}/*",)),
    ErrorCode("REASON_REQUIRED", 422, "validation_error", False, "fix_request",
              "Overrides (reset, force-open, disable) need a reason for the audit row.",
              ("POST /api/v1/breakers/{name}/reset/", "POST /api/v1/breakers/{name}/force-open/",
               "POST /api/v1/breakers/{name}/disable/")),
    ErrorCode("INVALID_EXPIRY", 422, "validation_error", False, "fix_request",
              "expires_in is out of range, or given to reset.",
              ("POST /api/v1/breakers/{name}/reset/", "POST /api/v1/breakers/{name}/force-open/",
               "POST /api/v1/breakers/{name}/disable/")),
    ErrorCode("BREAKER_LIMIT_REACHED", 403, "permission_error", False, "request_access",
              "A client may own at most BREAKER_MAX_PER_CLIENT breakers.",
              ("POST /api/v1/breakers/{name}/outcomes/",
               "GET /api/v1/breakers/{name}/permit/")),
    ErrorCode("BREAKER_NOT_OWNED", 403, "permission_error", False, "request_access",
              "The breaker belongs to another client.",
              ("POST /api/v1/breakers/{name}/outcomes/",
               "GET /api/v1/breakers/{name}/permit/")),
    ErrorCode("BREAKER_RESERVED", 403, "permission_error", False, "request_access",
              "The name belongs to this service's own breakers.",
              ("POST /api/v1/breakers/{name}/outcomes/",
               "GET /api/v1/breakers/{name}/permit/")),
    ErrorCode("PROBE_REQUIRED", 409, "conflict", False, "fix_request",
              "A half-open breaker's outcome must name the probe it was permitted.",
              ("POST /api/v1/breakers/{name}/outcomes/",)),
    ErrorCode("<SERVICE>_CIRCUIT_OPEN", 503, "service_unavailable", True, "retry_later",
              "The breaker in front of a dependency refuses calls; Retry-After is when it "
              "lets a probe through. LOOKUPS_DB_CIRCUIT_OPEN is the reason of a lookup "
              "answered stale or slug-only while the registry's breaker is open.",
              where=("job", "reason")),
    # --- outgoing calls (jobs of kind http.request) ----------------------------------
    _upstream("AUTH", 500, False, "The upstream rejected this service's credentials."),
    _upstream("PERMISSION", 500, False, "The upstream refused the operation."),
    _upstream("RATE_LIMIT", 429, True, "The upstream is rate limiting us."),
    _upstream("SERVER", 503, True, "The upstream answered 5xx."),
    _upstream("TIMEOUT", 503, True, "The upstream did not answer in time."),
    _upstream("NETWORK", 503, True, "The upstream could not be reached."),
    _upstream("UNEXPECTED", 500, False, "The upstream answered something unexpected."),
    ErrorCode("RETRY_BUDGET_EXHAUSTED", 503, "service_unavailable", True, "retry_later",
              "The upstream failed and its retry budget (retries per first attempt, shared "
              "by every process) is spent, so the call was not retried.", where=("job",)),
    ErrorCode("PROVIDER_GROUP_UNAVAILABLE", 503, "service_unavailable", True, "retry_later",
              "No provider of the group answered and no declared fallback could; metadata "
              "lists what was tried.", where=("job",)),
    ErrorCode("PROVIDER_GROUP_CIRCUIT_OPEN", 503, "service_unavailable", True, "wait",
              "Every provider's breaker of the group is open and nothing was called; a job "
              "waits until the first one reopens.", where=("job",)),
    ErrorCode("UNKNOWN_PROVIDER", 422, "validation_error", False, "fix_request",
              "payload names neither a configured provider nor a group.",
              JOB_CREATE),
    ErrorCode("UNKNOWN_PROVIDER_GROUP", 422, "validation_error", False, "fix_request",
              "payload.group names no configured provider group.", JOB_CREATE),
    ErrorCode("PROVIDER_AND_GROUP_CONFLICT", 422, "validation_error", False, "fix_request",
              "payload gives both provider and group; send one.", JOB_CREATE),
    ErrorCode("INVALID_PATH", 422, "validation_error", False, "fix_request",
              "payload.path is not a plain absolute path.", JOB_CREATE),
    ErrorCode("INVALID_METHOD", 422, "validation_error", False, "fix_request",
              "payload.method is not an HTTP method.", JOB_CREATE),
    ErrorCode("PROVIDER_CALL_FORBIDDEN", 403, "permission_error", False, "request_access",
              "The provider's client_calls do not allow this method and path.",
              JOB_CREATE),
    # --- jobs --------------------------------------------------------------------------
    ErrorCode("UNKNOWN_JOB_KIND", 422, "validation_error", False, "fix_request",
              "No job kind with this name.", JOB_CREATE, ("response", "job")),
    ErrorCode("JOB_KIND_FORBIDDEN", 403, "permission_error", False, "request_access",
              "This kind is for another group (e.g. ops).", JOB_CREATE),
    ErrorCode("INVALID_TIMEOUT", 422, "validation_error", False, "fix_request",
              "timeout_seconds is out of range.", JOB_CREATE),
    ErrorCode("INVALID_DEADLINE", 422, "validation_error", False, "fix_request",
              "deadline_seconds is outside 1..JOB_MAX_DEADLINE_SECONDS, or below "
              "timeout_seconds.", JOB_CREATE),
    ErrorCode("INVALID_IDEMPOTENCY_KEY", 400, "invalid_request", False, "fix_request",
              "The Idempotency-Key header is empty or over 200 characters.",
              ("POST /api/v1/jobs/",)),
    ErrorCode("IDEMPOTENCY_KEY_REUSED", 409, "conflict", False, "fix_request",
              "The Idempotency-Key was used for a different request.", JOB_CREATE),
    ErrorCode("JOB_NOT_FOUND", 404, "not_found", False, "fix_request",
              "No job with this id (or not yours).",
              ("GET /api/v1/jobs/{job_id}/", "POST /api/v1/jobs/{job_id}/cancel/")),
    ErrorCode("JOB_NOT_CANCELLABLE", 409, "conflict", False, "fix_request",
              "The job has already finished.", ("POST /api/v1/jobs/{job_id}/cancel/",)),
    ErrorCode("DEMO_TRANSIENT_FAILURE", 503, "service_unavailable", True, "wait",
              "A planned failure of the demo.sleep kind (retried).", where=("job",)),
    ErrorCode("timeout", 500, "internal_error", False, "retry_later",
              "The job ran past its timeout_seconds.", where=("job",)),
    ErrorCode("deadline_exceeded", 500, "internal_error", False, "fix_request",
              "The job did not finish by its deadline (queued, waiting for a breaker or "
              "running); create it again with a longer deadline_seconds.", where=("job",)),
    ErrorCode("worker_lost", 500, "internal_error", False, "retry_later",
              "The worker died and the job had no attempts left.", where=("job",)),
    ErrorCode("worker_shutdown", 500, "internal_error", False, "retry_later",
              "A worker shutdown interrupted the job and it could not be re-queued.",
              where=("job",)),
    ErrorCode("processing_error", 500, "internal_error", False, "contact_support",
              "The job's handler failed unexpectedly.", where=("job",)),
    ErrorCode("invalid_result", 500, "internal_error", False, "contact_support",
              "The handler returned something that cannot be stored as JSON.", where=("job",)),
    ErrorCode("ALERT_DELIVERY_FAILED", 503, "service_unavailable", True, "wait",
              "A notifications.deliver job could not reach its channel (timeout, connection "
              "error, 429 or 5xx); retried with backoff, shown on the alert delivery.",
              where=("job",)),
    ErrorCode("ALERT_DELIVERY_REFUSED", 500, "internal_error", False, "contact_support",
              "A notification channel refused the delivery for good (a 4xx other than 429, or "
              "a bad address); not retried, shown on the alert delivery.", where=("job",)),
    # --- lookups -----------------------------------------------------------------------
    ErrorCode("INVALID_SLUG", 400, "invalid_request", False, "abort",
              "Not a valid slug: 1-100 lowercase letters, digits and single hyphens.",
              ("GET /api/v1/lookups/{slug}/", *JOB_CREATE), ("response", "item")),
    ErrorCode("MICRO_SERVICE_NOT_FOUND", 404, "not_found", False, "fallback",
              "No active micro-service with this slug; the caller may go on with the slug.",
              ("GET /api/v1/lookups/{slug}/", "* /api/v1/micro-services/{slug}/"),
              ("response", "item")),
    ErrorCode("LOOKUP_DATABASE_UNAVAILABLE", 503, "service_unavailable", True, "fallback",
              "The registry cannot be read: the lookup answers 200 with the mapping this "
              "process held (stale: true) or the slug-only fallback, and this reason.",
              where=("reason",)),
    ErrorCode("MICRO_SERVICE_EXISTS", 409, "conflict", False, "fix_request",
              "A micro-service with this slug or UUID exists.",
              ("POST /api/v1/micro-services/", "PUT /api/v1/micro-services/{slug}/",
               "PATCH /api/v1/micro-services/{slug}/")),
)  # fmt: skip


def find(code: str) -> ErrorCode | None:
    """The entry for ``code`` (exact entries first, then patterns)."""
    exact = _EXACT.get(code)
    if exact is not None:
        return exact
    return next((entry for entry in _PATTERNS if entry.matches(code)), None)


def for_operation(
    method: str, path: str, *, authenticated: bool, reads_body: bool
) -> list[ErrorCode]:
    """The entries an OpenAPI operation may answer with, by its "METHOD /path" globs."""
    keys = [f"{method.upper()} {path}"]
    if authenticated:
        keys.append(f"AUTH {path}")
    if reads_body:
        keys.append(f"BODY {path}")
    return [
        entry
        for entry in CATALOGUE
        if "response" in entry.where
        and any(fnmatch.fnmatchcase(key, rule) for rule in entry.operations for key in keys)
    ]


# Codes recorded by this process that the catalogue lacks (the tests fail on any).
unregistered: set[str] = set()


def check(code: str) -> None:
    """Called for each recorded error: note (once) a code the catalogue does not know."""
    if code in _EXACT or code in unregistered or len(unregistered) >= 100:
        return
    if find(code) is None:
        unregistered.add(code)
        logger.warning(
            "error code %s is not in the catalogue (controlplane.errors.catalogue)", code
        )


_EXACT = {entry.code: entry for entry in CATALOGUE if not entry.is_pattern}
_PATTERNS = [entry for entry in CATALOGUE if entry.is_pattern]
