"""DRF's exception handler: every API error leaves in one envelope, with a recorded support_id.

``{"error": {"code", "type", "message", "metadata", "support_id"}}``
"""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import set_rollback

from controlplane.errors.exceptions import to_user_facing
from controlplane.errors.recording import record_error


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    error = to_user_facing(exc)
    record_error(error, request=context.get("request"))
    set_rollback()
    return Response(error.envelope(), status=error.http_status, headers=error.response_headers())
