"""OpenAPI helpers: the error envelope on every operation, paginated list bodies."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

ERROR_STATUSES = (
    "400",
    "401",
    "403",
    "404",
    "405",
    "409",
    "413",
    "415",
    "422",
    "429",
    "500",
    "503",
)
ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "type", "message", "metadata", "support_id"],
            "properties": {
                "code": {"type": "string", "example": "NOT_FOUND"},
                "type": {"type": "string", "example": "not_found"},
                "message": {
                    "type": "string",
                    "description": "User-safe text ending with (Reference: <support_id>).",
                },
                "metadata": {"type": "object", "additionalProperties": True},
                "support_id": {"type": "string", "format": "uuid"},
            },
        }
    },
}


def add_error_envelope(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """Postprocessing hook: every operation may answer any error status with the envelope."""
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ERROR_ENVELOPE
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status in ERROR_STATUSES:
                operation["responses"].setdefault(
                    status,
                    {
                        "description": "Error (see the envelope)",
                        "content": {"application/json": {"schema": ref}},
                    },
                )
    return result


def cursor_page(name: str, item: serializers.Serializer) -> Any:
    """The body of a cursor-paginated list: {next, previous, results}."""
    return inline_serializer(
        name,
        {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
        },
    )
