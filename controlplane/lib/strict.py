"""Input taken as the schema says: JSON types are not coerced, query values not blank.

DRF coerces by default: ``"1"`` is accepted as a number, ``0`` as a string,
an empty query value (``?status=``) counts as absent, and unknown keys are
ignored (so a misspelt ``timeout_second`` silently does nothing). The OpenAPI
schema promises types and closed objects, so each of these is refused here.
Text PostgreSQL cannot store (NUL, unpaired surrogates), anywhere inside a
JSON value, is a 400 rather than a failed INSERT. Put :class:`StrictInput`
first in an input serializer's bases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.validators import RegexValidator
from django.http import QueryDict
from rest_framework import serializers


def whole_value_validator(pattern: str, message: str) -> RegexValidator:
    """A validator for ``^...$`` (the pattern the OpenAPI schema publishes) that matches the
    whole value: Python's ``$`` also matches before a final newline, so ``"name\\n"`` would
    pass; ``\\Z`` does not."""
    return RegexValidator(pattern.removesuffix("$") + r"\Z", message)


# Checked in order: the first matching field class decides what a value must be.
_JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.DecimalField, (int, float), "a number"),
    (serializers.ListField, (list,), "a list"),
    (serializers.DictField, (dict,), "an object"),
    (serializers.CharField, (str,), "a string"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.UUIDField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a string"),
)


def unstorable_text(value: Any) -> bool:
    """True if any string or key in JSON ``value`` has NUL or an unpaired surrogate."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(unstorable_text(k) or unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable_text(v) for v in value)
    return False


def json_type_problem(field: serializers.Field, value: Any) -> str | None:
    if value is None:
        return None  # DRF's allow_null decides
    for field_class, types, name in _JSON_TYPES:
        if isinstance(field, field_class):
            if isinstance(value, bool) and bool not in types:
                return f"Must be {name}."
            if not isinstance(value, types):
                return f"Must be {name}."
            limit = getattr(field, "max_length", None)
            if isinstance(value, str) and limit is not None and len(value) > limit:
                # DRF trims whitespace first; the schema's maxLength counts what was sent.
                return f"Ensure this field has no more than {limit} characters."
            if isinstance(field, serializers.ListField):
                for item in value:
                    problem = json_type_problem(field.child, item)
                    if problem:
                        return f"Each item: {problem[0].lower()}{problem[1:]}"
            return None
    return None


class StrictInput:
    # Serializer mixin: refuse mistyped JSON values and blank query values. (A comment,
    # not a docstring: drf-spectacular would show it as every serializer's description.)

    fields: Any

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, list[str]] = {}
        if isinstance(data, QueryDict):
            for name in self.fields:
                if name in data and data.get(name) == "":
                    errors[name] = ["This field may not be blank."]
        elif isinstance(data, Mapping):
            for name in data:
                if name not in self.fields:
                    errors[str(name)] = ["Unknown field."]
                elif self.fields[name].read_only:
                    errors[str(name)] = ["Read-only field; leave it out."]
            for name, field in self.fields.items():
                if field.read_only or name not in data:
                    continue
                problem = json_type_problem(field, data[name])
                if not problem and unstorable_text(data[name]):
                    problem = "Text must not contain NUL characters or unpaired surrogates."
                if problem:
                    errors[name] = [problem]
        if not errors:
            return super().to_internal_value(data)  # type: ignore[misc]
        # Report the other fields' problems too, as DRF would have.
        rest = {key: value for key, value in data.items() if key not in errors}
        try:
            super().to_internal_value(rest)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict):
                for key, detail in exc.detail.items():
                    errors.setdefault(key, detail)
        raise serializers.ValidationError(errors)
