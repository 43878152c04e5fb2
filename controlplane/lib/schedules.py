"""Periodic django-q2 tasks, (re)declared by each app after migrate."""

from __future__ import annotations


def ensure_schedule(name: str, func: str, minutes: int, using: str = "default") -> None:
    """Create or update the schedule ``name`` (its next run is kept on update)."""
    from django_q.models import Schedule

    Schedule.objects.using(using).update_or_create(
        name=name,
        defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes},
    )
