from __future__ import annotations

from django.apps import AppConfig


class LookupsConfig(AppConfig):
    name = "lookups"
    default_auto_field = "django.db.models.BigAutoField"
