"""Settings for benchmark servers: the real settings plus a bare baseline view."""

from controlplane.settings import *  # noqa: F403

ROOT_URLCONF = "bench._urls"
DEBUG = False
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
LOGGING["loggers"]["controlplane.errors.records"]["level"] = "WARNING"  # noqa: F405
