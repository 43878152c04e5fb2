"""OpenAPI postprocessing hooks: the error envelope on every operation, and the input rules
the views enforce beyond field types, written into the schema."""

from __future__ import annotations

from typing import Any

from controlplane.breakers.circuit import NAME
from jobs import registry
from jobs.actions import max_timeout_seconds
from lookups.models import SLUG_MAX_LENGTH, SLUG_PATTERN

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


# DRF refuses NUL in every CharField and trims whitespace before its "may not be
# blank" check; the schema says so, or it would promise strings the API refuses.
ANY_TEXT = r"^[^\x00]*$"
NON_BLANK_TEXT = r"^[^\x00]*[^\x00\s][^\x00]*$"


def _document_text(schema: dict[str, Any]) -> None:
    """Add the NUL / blank rule to a string schema that has no stricter rule of its own."""
    if schema.get("type") != "string" or {"pattern", "enum", "format"} & schema.keys():
        return
    schema["pattern"] = NON_BLANK_TEXT if schema.get("minLength", 0) >= 1 else ANY_TEXT


def document_input_rules(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict:
    """Postprocessing hook: what the views check beyond field types, as schema keywords."""
    parameter_rules = {
        "name": {"pattern": NAME.pattern, "maxLength": 100},
        "slug": {"pattern": SLUG_PATTERN, "maxLength": SLUG_MAX_LENGTH},
        "Idempotency-Key": {"maxLength": 200},
    }
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                schema = parameter.setdefault("schema", {})
                if parameter["name"] in parameter_rules and schema.get("type") == "string":
                    schema.update(parameter_rules[parameter["name"]])
                _document_text(schema)
    schemas = result.get("components", {}).get("schemas", {})
    job_input = schemas.get("JobInputRequest", {}).get("properties", {})
    if job_input:
        job_input["kind"]["enum"] = registry.kinds()
        job_input["timeout_seconds"]["maximum"] = max_timeout_seconds()
        # Optional: empty, or a slug (checked by the lookup flow, 400 INVALID_SLUG).
        job_input["micro_id"].update(
            pattern=f"^(?:{SLUG_PATTERN.strip('^$')})?$", maxLength=SLUG_MAX_LENGTH
        )
    for name, component in schemas.items():
        if name.endswith("Request") or name.endswith("Input"):
            component.setdefault("additionalProperties", False)  # StrictInput refuses others
            for prop in component.get("properties", {}).values():
                _document_text(prop)
                if prop.get("type") == "array":
                    _document_text(prop.get("items", {}))
    return result
