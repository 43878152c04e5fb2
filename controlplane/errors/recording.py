"""Turn an error into a stored, findable record.

``record_error`` is the one way an ErrorRecord is made, for errors raised here and
errors other services report: it builds the row (secrets scrubbed, text made
storable and cut to its columns, fingerprinted for grouping), has the store
write or spool it, counts it and logs one event (controlplane.lib.logs), with the
trace, span and request ids of the context it happened in (controlplane.lib.correlation).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import traceback as traceback_module
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from controlplane.errors import bounds, catalogue, drain, store
from controlplane.errors.exceptions import UserFacingError, known_codes
from controlplane.errors.scrubbing import default_scrubber
from controlplane.lib import correlation
from controlplane.lib.logs import log_event
from controlplane.lib.metrics import ERROR_RECORDS
from controlplane.lib.parsers import MAX_JSON_DEPTH, json_depth

logger = logging.getLogger(__name__)
records_log = logging.getLogger("controlplane.errors.records")  # one event per record

_MAX_TEXT = 10_000
_MAX_TRACEBACK = 50_000
_VOLATILE = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|0x[0-9a-f]+|\d+",
    re.IGNORECASE,
)


@contextmanager
def job_context(job_id: uuid.UUID | str) -> Iterator[None]:
    """Link every error recorded inside this block (same thread or task) to ``job_id``: an
    error recorded anywhere below a job's handler, e.g. by a ServiceClient, links to the
    job -- that record is often the one whose support_id the job reports, since recording
    the same support_id again changes nothing. Log lines inside carry the job id too."""
    with correlation.job_scope(str(job_id)):
        yield


def fingerprint(*, code: str, service: str, exception_type: str, message: str) -> str:
    """Same code, service, exception type and message shape (ids and numbers blanked)."""
    shape = _VOLATILE.sub("#", message)[:500]
    key = "\x1f".join((code, service, exception_type, shape))
    return hashlib.sha256(key.encode("utf-8", "backslashreplace")).hexdigest()


def _storable_text(text: str) -> str:
    """``text`` as PostgreSQL can hold it: no NUL, no lone surrogates (shown escaped)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def storable(value: Any) -> Any:
    """JSON ``value`` with every string and key made storable (jsonb refuses \\u0000 and
    unpaired surrogates, which any client can send); a record that cannot be stored
    would leave its support_id unresolvable."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, dict):
        return {_storable_text(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def _fit(text: str, limit: int) -> str:
    """``text`` for a column of ``limit`` characters: made storable first (escaping can
    lengthen it), then cut, so the row always fits."""
    return _storable_text(text)[:limit]


def _clean(text: str, limit: int) -> str:
    text = _storable_text(text)
    return text if len(text) <= limit else text[:limit] + "…[truncated]"


def request_context(request: Any) -> dict[str, Any]:
    """What support needs about the request: method, path, query, headers, body (each
    value cut to its limit, see ``bounds``)."""
    django_request = getattr(request, "_request", request)
    meta = django_request.META
    headers = {
        key[5:].replace("_", "-").title(): value
        for key, value in meta.items()
        if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in meta:
        headers["Content-Type"] = meta["CONTENT_TYPE"]
    context: dict[str, Any] = {
        "method": django_request.method,
        "path": django_request.path,
        "query": _query(django_request),
        "headers": bounds.cap_fields(headers),
        "remote_addr": meta.get("REMOTE_ADDR", ""),
    }
    body = _request_body(django_request)
    if body is not None:
        context["body"] = body
    return context


def _query(django_request: Any) -> Any:
    try:
        return bounds.cap_fields(dict(django_request.GET.lists()))
    except Exception:  # e.g. TooManyFieldsSent: the record must still be written
        raw = django_request.META.get("QUERY_STRING", "")
        return {bounds.TRUNCATED: "query not parsed", "raw": bounds.cap_text(raw, 1024)}


def _request_body(django_request: Any) -> Any:
    limit = settings.ERROR_MAX_BODY_BYTES
    try:
        length = int(django_request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    # Never read a large body just to record an error about it.
    raw = getattr(django_request, "_body", None)
    if raw is None and 0 < length <= limit:
        try:
            raw = django_request.body
        except Exception:  # stream already consumed, or the read itself failed
            return None
    if not raw:
        return None
    truncated = len(raw) > limit
    raw = raw[:limit]
    if not truncated and "json" in django_request.META.get("CONTENT_TYPE", ""):
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            pass
        else:
            if json_depth(parsed) <= MAX_JSON_DEPTH:  # deeper: kept as text
                return parsed
    text = raw.decode("utf-8", errors="replace")
    return text + ("…[truncated]" if truncated else "")


def stored_client(name: str) -> str:
    """A client name (User-Agent, or the reporting user) as its column stores it."""
    return _fit(default_scrubber().text(name), 150)


def _known_user(request: Any) -> Any:
    """The user already resolved for this request, without authenticating again.

    Reading ``request.user`` on a DRF request whose authentication failed runs the
    authenticators again (a database query): when the database is the reason for
    the error, that would raise inside the error handler.
    """
    if hasattr(request, "_request"):  # DRF Request
        return getattr(request, "_user", None)
    user = getattr(request, "user", None)
    if user is None:
        return None
    try:
        _ = user.is_authenticated  # resolves the lazy session user
    except Exception:  # the session store (database) is down
        return None
    return user


def build_row(
    error: UserFacingError,
    *,
    request: Any = None,
    service: str = "",
    job_id: uuid.UUID | str | None = None,
    breaker_name: str = "",
    breaker_state: str = "",
    api_client: str = "",
    occurred_at: datetime | None = None,
    exc: BaseException | None = None,
    reported_by: Any = None,
) -> dict[str, Any]:
    """The ErrorRecord row for ``error``, scrubbed and within ``bounds``. ``reported_by``:
    the client that reported it (POST /api/v1/errors/); this service did not raise it."""
    scrubber = default_scrubber()
    original = exc or error.original
    exception_type = ""
    traceback_text = ""
    if original is not None:
        exception_type = f"{type(original).__module__}.{type(original).__qualname__}"
        traceback_text = "".join(
            traceback_module.format_exception(type(original), original, original.__traceback__)
        )
    context = dict(error.context)
    user_id, username, method, path = None, "", "", ""
    anonymous, source, per_minute = False, None, settings.ERROR_CLIENT_FULL_RECORDS_PER_MINUTE
    if reported_by is not None:
        source = f"user:{reported_by.pk}"
    if request is not None:
        method = request.method
        path = getattr(request, "path", "")
        user = _known_user(request)
        if user is not None and user.is_authenticated:
            user_id, username = user.pk, user.get_username()
            source = f"user:{user.pk}"
        else:
            anonymous = True
            source = f"address:{request.META.get('REMOTE_ADDR', '')}"
            per_minute = settings.ERROR_FULL_RECORDS_PER_MINUTE
    compact = source is not None and not bounds.full_records.allow(source, per_minute)
    if request is not None:
        if not compact:  # a compact record keeps no request details: do not even read them
            context["request"] = request_context(request)
        api_client = api_client or request.META.get("HTTP_USER_AGENT", "")
    service = service or getattr(error, "service", "")
    ids = correlation.current()
    job_id = job_id or ids.job_id
    technical = scrubber.text(_clean(error.technical_message, _MAX_TEXT))
    row = {
        "support_id": str(error.support_id),
        "code": _fit(error.code, 100),
        "type": _fit(error.error_type, 50),
        "http_status": error.http_status,
        "user_message": scrubber.text(_clean(error.user_message, _MAX_TEXT)),
        "technical_message": technical,
        "context": bounds.fit_context(storable(scrubber.scrub(context))),
        "service": _fit(service, 100),
        "request_method": _fit(method, 10),
        "request_path": scrubber.text(_clean(path, 2000)),
        "user_id": user_id,
        "username": _fit(username, 150),
        "api_client": stored_client(api_client),
        "job_id": str(job_id) if job_id else None,
        "breaker_name": _fit(breaker_name, 100),
        "breaker_state": _fit(breaker_state, 20),
        "trace_id": ids.trace_id,
        "span_id": ids.span_id,
        "request_id": ids.request_id,
        "exception_type": _fit(exception_type, 200),
        "traceback": scrubber.text(_clean(traceback_text, _MAX_TRACEBACK)),
        "fingerprint": fingerprint(
            code=error.code, service=service, exception_type=exception_type, message=technical
        ),
        "anonymous": anonymous,
        "compact": False,
        "reported": reported_by is not None,
        "occurred_at": occurred_at.isoformat() if occurred_at else None,
        "created_at": None,  # the database clock, unless spooled
    }
    return bounds.compact(row) if compact else row


@dataclass(frozen=True)
class Recorded:
    """The stored (or spooled) row, and what became of it."""

    row: dict[str, Any]
    saved: store.Saved

    @property
    def support_id(self) -> str:
        return self.row["support_id"]


def record_error(error: UserFacingError, **details: Any) -> Recorded:
    """Build, store (or spool) and log the record for ``error``: the one way in."""
    row = build_row(error, **details)
    if not row["reported"]:
        catalogue.check(row["code"])
    saved = store.save(row)
    if saved == "spooled":
        drain.spooled()
    elif saved != "logged":
        drain.written()
    if saved == "duplicate":
        # Recorded before (a job re-recording its client's error): counted and logged once.
        return Recorded(row, saved)
    ERROR_RECORDS.labels(_code_label(row["code"], reported=row["reported"])).inc()
    # The record's own ids: a job's record names its job even when it was recorded for it
    # from outside the job's context (the reaper).
    log_event(
        records_log,
        "error_recorded",
        support_id=row["support_id"],
        code=row["code"],
        status=row["http_status"],
        service=row["service"],
        path=row["request_path"],
        exception=row["exception_type"],
        breaker=row["breaker_name"],
        job_id=row["job_id"] or "",
        request_id=row["request_id"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        spooled=saved == "spooled",
        saved=saved,
    )
    return Recorded(row, saved)


def _code_label(code: str, *, reported: bool) -> str:
    """The metric label: codes this service raises are bounded by its code and settings;
    a client may report any code, so those get their own series only when known."""
    if not reported or code in settings.ERROR_METRIC_CODES or code in known_codes():
        return code
    return "reported"
