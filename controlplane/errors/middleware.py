"""Every error under /api/ is the envelope, also with DEBUG on.

With DEBUG on, Django answers an exception raised outside a view (a disallowed
Host header, a failing middleware) with its HTML debug page before any handler
of ours runs. This middleware, outermost, turns such an answer under /api/ into
the envelope with a support_id, as production answers it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.response import Response

from controlplane.errors import views

# The statuses of Django's technical pages (a SuspiciousOperation, a 404, an exception).
_DJANGO_DEBUG_PAGES: dict[int, Callable[[HttpRequest], HttpResponse]] = {
    400: views.bad_request,
    403: views.permission_denied,
    404: views.page_not_found,
    500: views.server_error,
}


class ApiEnvelopeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            settings.DEBUG
            and request.path.startswith("/api/")
            and response.status_code in _DJANGO_DEBUG_PAGES
            # DRF renders its own errors (HTML only for a browser, with their own
            # support_id and headers): those are answers, not Django's debug pages.
            and not isinstance(response, Response)
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return _DJANGO_DEBUG_PAGES[response.status_code](request)
        return response
