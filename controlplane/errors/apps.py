from __future__ import annotations

from django.apps import AppConfig


class ErrorsConfig(AppConfig):
    name = "controlplane.errors"
    label = "errors"
    default_auto_field = "django.db.models.BigAutoField"
