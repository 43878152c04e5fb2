"""OpenAPI postprocessing hooks: the error envelope on every operation, and the input rules
the views enforce beyond field types, written into the schema."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from controlplane.breakers.circuit import NAME
from controlplane.errors import catalogue
from jobs import registry
from jobs.actions import max_timeout_seconds
from lookups.models import SLUG_MAX_LENGTH, SLUG_PATTERN

ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "type", "message", "metadata", "support_id"],
            "properties": {
                "code": {"$ref": "#/components/schemas/ErrorCode"},
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


def _code_component() -> dict[str, Any]:
    """Every code, as a schema (exact codes as an enum, named ones as patterns) and as the
    catalogue itself (``x-error-codes``) for clients that generate their own tables."""
    exact = [e.code for e in catalogue.CATALOGUE if not e.is_pattern and "response" in e.where]
    patterns = [
        "^" + e.code.replace("<SERVICE>", "[A-Z0-9_]+").replace("<GROUP>", "[A-Z0-9_]+") + "$"
        for e in catalogue.CATALOGUE
        if e.is_pattern and "response" in e.where
    ]
    return {
        "anyOf": [{"type": "string", "enum": exact}]
        + [{"type": "string", "pattern": pattern} for pattern in patterns],
        "description": "The error codes of this API; `x-error-codes` gives each one's HTTP "
        "status, whether to retry, and what to do (recovery: "
        + "; ".join(f"`{name}`: {text}" for name, text in catalogue.RECOVERIES.items())
        + ").",
        "x-error-codes": [
            {
                "code": e.code,
                "status": e.status,
                "type": e.type,
                "retryable": e.retryable,
                "recovery": e.recovery,
                "where": list(e.where),
                "description": e.description,
            }
            for e in catalogue.CATALOGUE
        ],
    }


def add_error_envelope(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """Postprocessing hook: each operation's error responses, one per status its codes can
    answer with, each listing those codes (from ``controlplane.errors.catalogue``)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorEnvelope"] = ERROR_ENVELOPE
    schemas["ErrorCode"] = _code_component()
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, path_item in result.get("paths", {}).items():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            entries = catalogue.for_operation(
                method,
                path,
                authenticated={} not in operation.get("security", [{}]),
                reads_body="requestBody" in operation,
            )
            by_status: dict[int, list[catalogue.ErrorCode]] = {}
            for entry in entries:
                by_status.setdefault(entry.status, []).append(entry)
            for status, codes in sorted(by_status.items()):
                listed = "\n".join(
                    f"- `{e.code}` ({'retry' if e.retryable else 'do not retry'}; "
                    f"{e.recovery}): {e.description}"
                    for e in codes
                )
                response = operation["responses"].setdefault(
                    str(status), {"content": {"application/json": {"schema": ref}}}
                )
                text = f"Error envelope with one of these codes:\n\n{listed}"
                own = response.get("description")  # a status the view documents itself
                response["description"] = f"{own}\n\nOr: {text}" if own else text
    return result


# DRF refuses NUL in every CharField and trims whitespace (Python's str.strip()) before its
# "may not be blank" check; the schema says so, or it would promise strings the API refuses.
# Python's whitespace is not the schema regex's \s: it adds U+001C-U+001F and U+0085 and
# lacks U+FEFF, so the class is spelled out from Python itself (none lies above U+3000).
PYTHON_WHITESPACE = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace())
ANY_TEXT = r"^[^\x00]*$"
NON_BLANK_TEXT = rf"^[^\x00]*[^\x00{PYTHON_WHITESPACE}][^\x00]*$"


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
    for job_schema in ("JobInputRequest", "JobBatchItemRequest"):  # a single create, an item
        job_input = schemas.get(job_schema, {}).get("properties", {})
        if not job_input:
            continue
        job_input["kind"]["enum"] = registry.kinds()
        job_input["timeout_seconds"]["maximum"] = max_timeout_seconds()
        job_input["deadline_seconds"]["maximum"] = settings.JOB_MAX_DEADLINE_SECONDS
        # Optional: empty, or a slug (checked by the lookup flow, 400 INVALID_SLUG).
        job_input["micro_id"].update(
            pattern=f"^(?:{SLUG_PATTERN.strip('^$')})?$", maxLength=SLUG_MAX_LENGTH
        )
    batch = schemas.get("JobBatchInputRequest", {}).get("properties", {})
    if batch:  # DRF checks a list serializer's length; drf-spectacular does not say so
        batch["jobs"].update(minItems=1, maxItems=settings.JOB_BATCH_MAX)
    for name, component in schemas.items():
        if name.endswith("Request") or name.endswith("Input"):
            component.setdefault("additionalProperties", False)  # StrictInput refuses others
            for prop in component.get("properties", {}).values():
                _document_text(prop)
                if prop.get("type") == "array":
                    _document_text(prop.get("items", {}))
    return result
