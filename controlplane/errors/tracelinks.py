"""Links from an error record to its trace in Jaeger, Tempo or any viewer: TRACE_URL_TEMPLATE.

The template holds ``{trace_id}`` (32 hex digits), e.g.
``https://tempo.example/explore?trace={trace_id}`` or
``http://jaeger.example:16686/trace/{trace_id}``; empty means no link. A bad template is
refused at start-up (system check ``errors.E001``), not found out on the record page.
"""

from __future__ import annotations

import string
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot make trace links, or None if it can (or is empty)."""
    if not template:
        return None
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        return f"it does not parse as a template ({exc})"
    if fields != {"trace_id"}:
        return f"it must hold {{trace_id}} and no other field; it holds {sorted(fields)}"
    parts = urlsplit(template.replace("{trace_id}", "0" * 32))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "it must be an http:// or https:// URL"
    return None


def trace_url(trace_id: str) -> str:
    """The viewer's URL for ``trace_id``, or "" when no (usable) template is set."""
    template = settings.TRACE_URL_TEMPLATE or ""
    if not trace_id or template_problem(template):
        return ""
    return template.format(trace_id=trace_id)


@register()
def trace_url_template_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    problem = template_problem(settings.TRACE_URL_TEMPLATE or "")
    if problem is None:
        return []
    return [
        Error(
            f"TRACE_URL_TEMPLATE={settings.TRACE_URL_TEMPLATE!r}: {problem}.",
            hint="For example https://tempo.example/trace/{trace_id}, or leave it empty.",
            id="errors.E001",
        )
    ]
