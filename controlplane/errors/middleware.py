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

from controlplane.errors import views


class ApiEnvelopeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            settings.DEBUG
            and response.status_code >= 400
            and request.path.startswith("/api/")
            and response.get("Content-Type", "").startswith("text/html")
        ):
            if response.status_code == 400:
                return views.bad_request(request)
            if response.status_code == 403:
                return views.permission_denied(request)
            if response.status_code == 404:
                return views.page_not_found(request)
            return views.server_error(request)
        return response
