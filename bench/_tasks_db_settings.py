"""Settings for bench/jobs.py's django-tasks-db peer: the real settings plus its apps."""

from controlplane.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks", "django_tasks_db"]  # noqa: F405
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
