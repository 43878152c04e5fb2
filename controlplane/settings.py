"""Settings for the reliability control plane.

Every knob is an environment variable read through the typed helpers in
``controlplane.lib.env``; README.md lists each one with its default.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from controlplane.errors.scrubbing import DEFAULT_DENYLIST, DEFAULT_EXACT_KEYS, default_scrubber
from controlplane.lib import embedded_db
from controlplane.lib.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_json,
    env_list,
    env_optional_float,
    env_str,
    parse_database_url,
)
from controlplane.lib.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

ENVIRONMENT = env_choice("ENVIRONMENT", "development", ("development", "production", "test"))
IS_PRODUCTION = ENVIRONMENT == "production"

DEBUG = env_bool("DEBUG", ENVIRONMENT == "development")

# Development and test get a fixed, clearly-insecure key; production must set one (E004).
INSECURE_DEFAULT_SECRET_KEY = "django-insecure-development-only-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY") or INSECURE_DEFAULT_SECRET_KEY

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if IS_PRODUCTION else ["127.0.0.1", "localhost", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "controlplane",
    "controlplane.errors",
    "controlplane.breakers",
    "controlplane.resilience",
    "controlplane.health",
    "jobs",
    "lookups",
]

MIDDLEWARE = [
    # Outermost: X-Request-Id on every answer. The tracing middleware is added after the
    # envelope's (controlplane.apps).
    "controlplane.lib.correlation.RequestIdMiddleware",
    # It compresses the final body, whatever the others made of it.
    "controlplane.lib.compression.JsonGZipMiddleware",
    "controlplane.errors.middleware.ApiEnvelopeMiddleware",
    "controlplane.lib.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# JSON answers at least this long are gzipped for clients that accept it (not HTML: BREACH).
GZIP_MIN_BYTES = env_int("GZIP_MIN_BYTES", 1024, minimum=200)

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# DATABASE_URL when set; otherwise an embedded PostgreSQL (pgserver) under var/.
EMBEDDED_PG_DIR = Path(env_str("EMBEDDED_PG_DIR", str(BASE_DIR / "var" / "pgdata")))
DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_DATABASE = DATABASE_URL is None
if EMBEDDED_DATABASE and IS_PRODUCTION:
    # Never start an embedded server in production: system check controlplane.E006
    # refuses to start, with this placeholder in place so the checks can run at all.
    DATABASE_URL = "postgresql://unset@/DATABASE_URL-is-not-set?host=/nonexistent"
elif EMBEDDED_DATABASE:
    DATABASE_URL = embedded_db.ensure_running(EMBEDDED_PG_DIR)

_database = parse_database_url(DATABASE_URL)
# Django's backend plus the fail-fast gate (controlplane.lib.dbgate): README "Database outages".
_database["ENGINE"] = "controlplane.lib.postgres"
_database["OPTIONS"].setdefault("application_name", "controlplane")
if env_bool("DB_POOL", False):
    # psycopg 3's pool inside each process; Django requires CONN_MAX_AGE=0 with it.
    _database["OPTIONS"]["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2, minimum=0),
        "max_size": env_int("DB_POOL_MAX_SIZE", 10, minimum=1),
        "timeout": env_int("DB_POOL_TIMEOUT", 10, minimum=1),
    }
    _database["CONN_MAX_AGE"] = 0
else:
    _database["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
    _database["CONN_HEALTH_CHECKS"] = True
_database["OPTIONS"].setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 5, minimum=1))
# Each process's listener pings PostgreSQL this often; an answer slower than the timeout
# marks the database unreachable (requests fail fast, stuck queries are cut loose).
DB_PING_SECONDS = env_float("DB_PING_SECONDS", 1.0, minimum=0.1)
DB_PING_TIMEOUT = env_float("DB_PING_TIMEOUT", 3.0, minimum=0.5)
DATABASES = {"default": _database}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static ---------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "static")))

# --- Production hardening (what `check --deploy` asks for) ----------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", IS_PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", IS_PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", IS_PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if IS_PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", IS_PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

AUTH_CACHE_TTL = env_float("AUTH_CACHE_TTL", 60.0, minimum=0.0)
AUTH_CACHE_MAX_SIZE = env_int("AUTH_CACHE_MAX_SIZE", 10_000, minimum=1)
# Stale-if-error for tokens; short, as a revocation this process cannot see waits this long.
AUTH_STALE_IF_ERROR_SECONDS = env_float("AUTH_STALE_IF_ERROR_SECONDS", 900.0, minimum=0.0)

# --- REST API -------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes unauthenticated calls 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.lib.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "controlplane.errors.drf.api_exception_handler",
    # The API speaks JSON only: form and multipart bodies make every value text, so
    # the schema's types could not be enforced. The parser refuses bodies nested
    # deeper than 64 levels (Python's json recursion would otherwise raise).
    "DEFAULT_PARSER_CLASSES": ["controlplane.lib.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Reliability control plane API",
    "DESCRIPTION": "Jobs, micro-service lookups, circuit breakers and error records.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components, with minLength on non-blank fields.
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI assets are served locally (no CDN): the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "controlplane.openapi.add_error_envelope",
        "controlplane.openapi.document_input_rules",
    ],
}

# --- Caches ---------------------------------------------------------------------
# The default cache is per process. django-q2 keeps cluster status in its own
# cache, which must be shared so `qinfo` and health checks see every cluster.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "cluster": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "controlplane_cache",
    },
}

# --- Worker (django-q2, ORM broker on the default database) ---------------------
Q_CLUSTER = {
    "name": "controlplane",
    "orm": "default",
    # The ORM broker, but a dequeue that meets a database restart polls again instead of
    # stalling dispatch for 10 s (jobs/broker.py).
    "broker_class": "jobs.broker.ResilientORM",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": env_int("Q_TIMEOUT", 900, minimum=1),
    # Must exceed timeout, or django-q2 redelivers tasks that are still running.
    "retry": env_int("Q_RETRY", 960, minimum=2),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 1, minimum=1),
    "poll": env_float("Q_POLL", 0.2, minimum=0.01),  # a NOTIFY wakes it sooner (jobs.wakeups)
    "catch_up": False,
    # The Job table is the record of every job; storing django-q2's own success rows
    # made its monitor fall behind under load, which stalled worker recycling for ~20 s.
    "save_limit": -1,
    "ack_failures": True,
    "cache": "cluster",
}
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured("Q_RETRY must be greater than Q_TIMEOUT")

# --- Error records ---------------------------------------------------------------
ERROR_RETENTION_DAYS = env_int("ERROR_RETENTION_DAYS", 90, minimum=1)
ERROR_SPOOL_PATH = Path(env_str("ERROR_SPOOL_PATH", str(BASE_DIR / "var" / "error-spool.jsonl")))
ERROR_MAX_BODY_BYTES = env_int("ERROR_MAX_BODY_BYTES", 8192, minimum=0)
ERROR_SCRUB_KEYS = env_list("ERROR_SCRUB_KEYS", list(DEFAULT_DENYLIST))
ERROR_SCRUB_EXACT_KEYS = env_list("ERROR_SCRUB_EXACT_KEYS", list(DEFAULT_EXACT_KEYS))
# What a record holds, and full records per source (controlplane.errors.bounds).
ERROR_MAX_VALUE_CHARS = env_int("ERROR_MAX_VALUE_CHARS", 1024, minimum=64)
ERROR_MAX_CONTEXT_BYTES = env_int("ERROR_MAX_CONTEXT_BYTES", 16 * 1024, minimum=1024)
ERROR_FULL_RECORDS_PER_MINUTE = env_int("ERROR_FULL_RECORDS_PER_MINUTE", 10, minimum=0)
ERROR_CLIENT_FULL_RECORDS_PER_MINUTE = env_int(
    "ERROR_CLIENT_FULL_RECORDS_PER_MINUTE", 60, minimum=0
)
ERROR_ANONYMOUS_RETENTION_DAYS = env_int("ERROR_ANONYMOUS_RETENTION_DAYS", 7, minimum=1)
ERROR_SPOOL_MAX_BYTES = env_int("ERROR_SPOOL_MAX_BYTES", 64 * 1024 * 1024, minimum=64 * 1024)
# Reported codes that get their own metric series (the service's own codes always do).
ERROR_METRIC_CODES = env_list("ERROR_METRIC_CODES", [])
ERROR_DB_CONNECT_TIMEOUT = env_int("ERROR_DB_CONNECT_TIMEOUT", 2, minimum=1)
ERROR_DB_STATEMENT_TIMEOUT_MS = env_int("ERROR_DB_STATEMENT_TIMEOUT_MS", 5000, minimum=100)
CSRF_FAILURE_VIEW = "controlplane.errors.views.csrf_failure"

# --- Circuit breakers (defaults for breakers created on first use) ----------------
BREAKER_DEFAULTS = {
    "policy": env_choice("BREAKER_POLICY", "consecutive", ("consecutive", "window")),
    "failure_threshold": env_int("BREAKER_FAILURE_THRESHOLD", 5, minimum=1),
    "window_seconds": env_int("BREAKER_WINDOW_SECONDS", 300, minimum=1),
    "failure_rate_threshold": env_optional_float("BREAKER_FAILURE_RATE", minimum=0.0, maximum=1.0),
    "minimum_calls": env_int("BREAKER_MINIMUM_CALLS", 20, minimum=1),
    "cooldown_seconds": env_float("BREAKER_COOLDOWN_SECONDS", 60.0, minimum=0.0),
    "cooldown_growth": env_float("BREAKER_COOLDOWN_GROWTH", 1.0, minimum=1.0),
    "max_cooldown_seconds": env_float("BREAKER_MAX_COOLDOWN_SECONDS", 600.0, minimum=0.0),
    "half_open_max_probes": env_int("BREAKER_HALF_OPEN_PROBES", 1, minimum=1),
    "half_open_successes": env_int("BREAKER_HALF_OPEN_SUCCESSES", 1, minimum=1),
    "probe_lease_seconds": env_float("BREAKER_PROBE_LEASE_SECONDS", 30.0, minimum=0.1),
    "fail_open": env_bool("BREAKER_FAIL_OPEN", True),
}
BREAKER_SNAPSHOT_TTL = env_float("BREAKER_SNAPSHOT_TTL", 5.0, minimum=0.0)
BREAKER_EVENT_RETENTION_DAYS = env_int("BREAKER_EVENT_RETENTION_DAYS", 90, minimum=1)
BREAKER_MAX_PER_CLIENT = env_int("BREAKER_MAX_PER_CLIENT", 50, minimum=1)
BREAKER_DB_CONNECT_TIMEOUT = env_int("BREAKER_DB_CONNECT_TIMEOUT", 2, minimum=1)

# --- Retries (controlplane.resilience.retry.RetryPolicy.from_settings) ---------------
RETRY_DEFAULTS = {
    "max_attempts": env_int("RETRY_MAX_ATTEMPTS", 3, minimum=1),
    "initial_delay": env_float("RETRY_INITIAL_DELAY", 0.1, minimum=0.0),
    "factor": env_float("RETRY_FACTOR", 2.0, minimum=1.0),
    "max_delay": env_float("RETRY_MAX_DELAY", 2.0, minimum=0.0),
    "jitter": env_choice("RETRY_JITTER", "full", ("full", "proportional", "none")),
    "deadline": env_float("RETRY_DEADLINE", 30.0, minimum=0.0),
    "retry_after_cap": env_float("RETRY_AFTER_CAP", 30.0, minimum=0.0),
}
# Retry budget (controlplane.resilience.budget): retries <= RATIO x first attempts + MIN per
# window and upstream. The floor lets a quiet upstream still retry a blip.
RETRY_BUDGET_RATIO = env_float("RETRY_BUDGET_RATIO", 0.2, minimum=0.0)
RETRY_BUDGET_MIN_PER_WINDOW = env_int("RETRY_BUDGET_MIN_PER_WINDOW", 10, minimum=0)
RETRY_BUDGET_WINDOW_SECONDS = env_float("RETRY_BUDGET_WINDOW_SECONDS", 60.0, minimum=1.0)
# How often a process adds its counts and reads everyone's (time or counted calls).
RETRY_BUDGET_SYNC_SECONDS = env_float("RETRY_BUDGET_SYNC_SECONDS", 1.0, minimum=0.01)
RETRY_BUDGET_SYNC_CALLS = env_int("RETRY_BUDGET_SYNC_CALLS", 100, minimum=1)

# --- Upstream providers (controlplane.resilience.providers) --------------------------
PROVIDERS = env_json("PROVIDERS", {})
PROVIDER_GROUPS = env_json("PROVIDER_GROUPS", {})
PROVIDER_FALLBACK_TO_MOCK = env_bool("PROVIDER_FALLBACK_TO_MOCK", False)
PROVIDER_HEALTH_INTERVAL_MINUTES = env_int("PROVIDER_HEALTH_INTERVAL_MINUTES", 1, minimum=1)
PROVIDER_HEALTH_TIMEOUT = env_float("PROVIDER_HEALTH_TIMEOUT", 5.0, minimum=0.1)
PROVIDER_HEALTH_SLOW_MS = env_float("PROVIDER_HEALTH_SLOW_MS", 1000.0, minimum=1.0)
PROVIDER_HEALTH_HISTORY_DAYS = env_int("PROVIDER_HEALTH_HISTORY_DAYS", 7, minimum=1)
DASHBOARD_REFRESH_SECONDS = env_int("DASHBOARD_REFRESH_SECONDS", 15, minimum=2)  # ops dashboard
# A group's "last_good" fallback: body cap, and requests kept per group (oldest evicted).
LAST_GOOD_MAX_BODY_BYTES = env_int("LAST_GOOD_MAX_BODY_BYTES", 65536, minimum=1)
LAST_GOOD_MAX_ROWS = env_int("LAST_GOOD_MAX_ROWS", 1000, minimum=1)

# --- Micro-service lookups ------------------------------------------------------------
LOOKUP_CACHE_TTL = env_float("LOOKUP_CACHE_TTL", 1800.0, minimum=0.0)
LOOKUP_CACHE_MAX_SIZE = env_int("LOOKUP_CACHE_MAX_SIZE", 100, minimum=1)
LOOKUP_STALE_IF_ERROR_SECONDS = env_float("LOOKUP_STALE_IF_ERROR_SECONDS", 3600.0, minimum=0.0)
LOOKUP_DB_RETRIES = env_int("LOOKUP_DB_RETRIES", 3, minimum=0)
LOOKUP_WARM_ON_START = env_bool("LOOKUP_WARM_ON_START", False)
LOOKUP_STATS_FLUSH_SECONDS = env_float("LOOKUP_STATS_FLUSH_SECONDS", 10.0, minimum=0.0)
LOOKUP_BATCH_MAX = env_int("LOOKUP_BATCH_MAX", 500, minimum=1)
LOOKUP_WARM_WAIT_SECONDS = env_float("LOOKUP_WARM_WAIT_SECONDS", 2.0, minimum=0.0)
LOOKUP_REPORT_RETENTION_DAYS = env_int("LOOKUP_REPORT_RETENTION_DAYS", 1, minimum=1)
LOOKUP_SWEEP_SECONDS = env_float("LOOKUP_SWEEP_SECONDS", 300.0, minimum=1.0)
# Per-slug figures: at most this many slugs (in use first), none unseen for this long.
LOOKUP_SLUG_STATS_MAX = env_int("LOOKUP_SLUG_STATS_MAX", 1000, minimum=1)
LOOKUP_SLUG_STATS_RETENTION_DAYS = env_int("LOOKUP_SLUG_STATS_RETENTION_DAYS", 7, minimum=1)

# --- Jobs -------------------------------------------------------------------------------
JOB_TIMEOUT_SECONDS = env_int("JOB_TIMEOUT_SECONDS", 600, minimum=1)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
JOB_MAX_PAYLOAD_BYTES = env_int("JOB_MAX_PAYLOAD_BYTES", 20 * 1024 * 1024, minimum=1024)
JOB_BATCH_MAX = env_int("JOB_BATCH_MAX", 100, minimum=1)  # jobs per POST /api/v1/jobs/batch/
JOB_LEASE_SECONDS = env_float("JOB_LEASE_SECONDS", 30.0, minimum=1.0)
JOB_HEARTBEAT_SECONDS = env_float("JOB_HEARTBEAT_SECONDS", 5.0, minimum=0.1)
JOB_CHECKPOINT_POLL_SECONDS = env_float("JOB_CHECKPOINT_POLL_SECONDS", 0.2, minimum=0.0)
JOB_DRAIN_SECONDS = env_float("JOB_DRAIN_SECONDS", 30.0, minimum=0.0)
JOB_SHUTDOWN_ACTION = env_choice("JOB_SHUTDOWN_ACTION", "requeue", ("requeue", "fail"))
JOB_MAINTENANCE_SECONDS = env_float("JOB_MAINTENANCE_SECONDS", 1.0, minimum=0.1)
JOB_REDISPATCH_SECONDS = env_float("JOB_REDISPATCH_SECONDS", 60.0, minimum=1.0)
JOB_TIMEOUT_GRACE_SECONDS = env_int("JOB_TIMEOUT_GRACE_SECONDS", 10, minimum=1)
JOB_RETRY_INITIAL_DELAY = env_float("JOB_RETRY_INITIAL_DELAY", 1.0, minimum=0.0)
JOB_RETRY_MAX_DELAY = env_float("JOB_RETRY_MAX_DELAY", 60.0, minimum=0.0)
JOB_DEFAULT_DEADLINE_SECONDS = env_int("JOB_DEFAULT_DEADLINE_SECONDS", 3600, minimum=1)
JOB_MAX_DEADLINE_SECONDS = env_int("JOB_MAX_DEADLINE_SECONDS", 86400, minimum=1)
if not JOB_TIMEOUT_SECONDS <= JOB_DEFAULT_DEADLINE_SECONDS <= JOB_MAX_DEADLINE_SECONDS:
    raise ImproperlyConfigured(
        "JOB_DEFAULT_DEADLINE_SECONDS must leave room for one JOB_TIMEOUT_SECONDS and be at "
        "most JOB_MAX_DEADLINE_SECONDS"
    )
# How long a job waits for a breaker forced open without an expiry before it looks again.
JOB_BREAKER_RECHECK_SECONDS = env_float("JOB_BREAKER_RECHECK_SECONDS", 30.0, minimum=1.0)
# Finished jobs are kept as long as error records by default, so a record's job link holds.
JOB_RETENTION_DAYS = env_int("JOB_RETENTION_DAYS", 90, minimum=1)
# Bodies up to the job payload limit may be read; larger ones are refused before reading.
DATA_UPLOAD_MAX_MEMORY_SIZE = JOB_MAX_PAYLOAD_BYTES + 64 * 1024

# --- Alerts and notifications (controlplane.health.alerts; README "Alerts and notifications")
ALERT_WEBHOOK_URLS = env_list("ALERT_WEBHOOK_URLS", [])  # signed JSON webhook channels
ALERT_WEBHOOK_SECRET = env_str("ALERT_WEBHOOK_SECRET", "")  # empty: unsigned (not in production)
ALERT_HTTP_TIMEOUT = env_float("ALERT_HTTP_TIMEOUT", 3.0, minimum=0.1)
ALERT_MAX_ATTEMPTS = env_int("ALERT_MAX_ATTEMPTS", 5, minimum=1)
ALERT_SWEEP_SECONDS = env_float("ALERT_SWEEP_SECONDS", 10.0, minimum=0.1)
ALERT_BURST_WINDOW_SECONDS = env_int("ALERT_BURST_WINDOW_SECONDS", 300, minimum=1)
ALERT_ERROR_BURST_COUNT = env_int("ALERT_ERROR_BURST_COUNT", 50, minimum=1)  # per error group
ALERT_JOB_FAILURE_BURST_COUNT = env_int("ALERT_JOB_FAILURE_BURST_COUNT", 10, minimum=1)  # per kind
ALERT_SPOOL_BACKLOG_BYTES = env_int("ALERT_SPOOL_BACKLOG_BYTES", 1024 * 1024, minimum=1)
ALERT_WORKER_ABSENT_SECONDS = env_int("ALERT_WORKER_ABSENT_SECONDS", 120, minimum=0)  # deploys
# Email channels: SMTP in production, printed to the log elsewhere; never an unbounded wait.
_smtp = "django.core.mail.backends." + ("smtp" if IS_PRODUCTION else "console") + ".EmailBackend"
EMAIL_BACKEND = env_str("EMAIL_BACKEND", _smtp)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10.0, minimum=0.1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "controlplane@localhost")

# --- Metrics (Prometheus, multi-process) ---------------------------------------------------
# Every process of one deployment must share this folder; `make run` empties it at start.
PROMETHEUS_MULTIPROC_DIR = Path(
    env_str("PROMETHEUS_MULTIPROC_DIR", str(BASE_DIR / "var" / f"prometheus-{ENVIRONMENT}"))
)
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)  # read by prometheus-client
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])
# Reverse proxies whose X-Forwarded-For names the real scraper (without a token).
METRICS_TRUSTED_PROXIES = env_list("METRICS_TRUSTED_PROXIES", [])
METRICS_CACHE_SECONDS = env_float("METRICS_CACHE_SECONDS", 10.0, minimum=0.0)
METRICS_MAX_BREAKERS = env_int("METRICS_MAX_BREAKERS", 500, minimum=1)

# --- Logging and tracing (controlplane.lib.logs, controlplane.lib.tracing) -----------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOG_FORMAT = env_choice("LOG_FORMAT", "json" if IS_PRODUCTION else "text", ("json", "text"))
LOGGING = logging_config(LOG_LEVEL, LOG_FORMAT, scrubber=default_scrubber)
# The admin links a record's trace here, e.g. https://tempo.example/trace/{trace_id}.
TRACE_URL_TEMPLATE = env_str("TRACE_URL_TEMPLATE", "")
