"""One log for web and worker: one event per line, with the ids that find it.

``LOG_FORMAT=json`` (production's default): one JSON object per line, with ``time``,
``level``, ``logger``, ``message``, the correlation ids where they apply
(``request_id``, ``trace_id``, ``span_id``, ``job_id``), an event's own fields
(``support_id``, ``breaker``, ``code``...: see :func:`log_event`) and ``exception``.
``LOG_FORMAT=text`` (development's default, what ``make run`` shows): the same event as
a readable line, its fields as ``key=value`` after the message.

Secrets are scrubbed from the message, the fields and the traceback by the scrubber
the settings name (the errors app's: this kernel module imports nothing above it).
django-q2's per-task and per-schedule chatter is logged at DEBUG, not INFO.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controlplane.lib import correlation

# Record attributes an event's fields travel in (``extra={FIELDS: {...}}``).
FIELDS = "event_fields"
_IDS = ("request_id", "trace_id", "span_id", "job_id")


def log_event(
    logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log ``event`` with its fields (kept apart from the message, so JSON keeps types)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={FIELDS: {"event": event, **fields}})


class CorrelationFilter(logging.Filter):
    """Stamps each record with the ids of the context that logged it (on the handler, so
    a record is stamped in the thread that made it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            ids = correlation.current()
            record.request_id, record.trace_id = ids.request_id, ids.trace_id
            record.span_id, record.job_id = ids.span_id, ids.job_id
        return True


class DjangoQChatterFilter(logging.Filter):
    """django-q2 logs every task it runs and every schedule it fires at INFO (several lines
    a second on a busy worker): those become DEBUG, shown only at LOG_LEVEL=DEBUG. Its
    start, stop, recycling and failures keep their level."""

    CHATTER = (" processing ", "Processed '", " created task ", "Enqueued [")

    def __init__(self, name: str = "", level: str = "INFO") -> None:
        super().__init__(name)
        self.shown = logging.getLevelName(level) <= logging.DEBUG

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and any(
            part in record.getMessage() for part in self.CHATTER
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.shown
        return True


class _Scrubbing:
    def __init__(self, scrubber: Callable[[], Any]) -> None:
        self._make_scrubber = scrubber

    def scrubber(self) -> Any:
        # Made per line: the scrubber reads settings, which are not ready when logging is
        # configured (and tests change them).
        return self._make_scrubber()


class JsonFormatter(_Scrubbing, logging.Formatter):
    def __init__(self, scrubber: Callable[[], Any]) -> None:
        logging.Formatter.__init__(self)
        _Scrubbing.__init__(self, scrubber)

    def format(self, record: logging.LogRecord) -> str:
        scrubber = self.scrubber()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrubber.text(record.getMessage()),
        }
        for name in _IDS:
            if value := getattr(record, name, ""):
                line[name] = value
        fields = getattr(record, FIELDS, None)
        if fields:
            line.update(scrubber.scrub(fields))
        if record.exc_info:
            line["exception"] = scrubber.text(self.formatException(record.exc_info))
        elif record.stack_info:
            line["stack"] = scrubber.text(self.formatStack(record.stack_info))
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(_Scrubbing, logging.Formatter):
    def __init__(self, scrubber: Callable[[], Any]) -> None:
        logging.Formatter.__init__(self, "%(asctime)s %(levelname)s %(name)s %(message)s")
        _Scrubbing.__init__(self, scrubber)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = dict(getattr(record, FIELDS, None) or {})
        extras.pop("event", None)  # the message already is the event
        for name in ("request_id", "job_id"):  # trace ids are too long for a terminal
            if value := getattr(record, name, ""):
                extras.setdefault(name, value)
        if extras:
            pairs = " ".join(f"{key}={value}" for key, value in extras.items() if value != "")
            head, _, rest = text.partition("\n")  # after the message, before a traceback
            text = f"{head} [{pairs}]" + (f"\n{rest}" if rest else "")
        return self.scrubber().text(text)


def logging_config(level: str, fmt: str, *, scrubber: Callable[[], Any]) -> dict[str, Any]:
    """The LOGGING dict: every line through one handler, in ``fmt`` ("json" or "text"),
    its message, fields and traceback scrubbed by ``scrubber()`` (the settings pass the
    errors app's, which this kernel module may not import)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "correlation": {"()": "controlplane.lib.logs.CorrelationFilter"},
            "django_q_chatter": {
                "()": "controlplane.lib.logs.DjangoQChatterFilter",
                "level": level,
            },
        },
        "formatters": {
            "json": {"()": "controlplane.lib.logs.JsonFormatter", "scrubber": scrubber},
            "text": {"()": "controlplane.lib.logs.TextFormatter", "scrubber": scrubber},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": fmt,
                "filters": ["correlation"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "pgserver": {"level": "WARNING"},
            # Django's default handlers (a bare console line with DEBUG on, mail to ADMINS)
            # would write its lines a second time, outside the one log.
            "django": {"handlers": []},
            "django.db.backends": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
            "django-q": {"filters": ["django_q_chatter"]},
            # Error records: one event each, whatever LOG_LEVEL says.
            "controlplane.errors.records": {"level": "INFO"},
        },
    }
