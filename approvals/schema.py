"""The approval form: a JSON Schema of an object, validated with ``jsonschema``.

Pure (no Django). The schema is the single authority on what an approver
may submit: the HTML form and the REST API both hand the data to
``validate``, which fills in defaults and reports errors per field.
"""

from __future__ import annotations

from jsonschema import FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

NON_FIELD = "__all__"  # Django's key for errors that belong to no single field
REQUIRED_MESSAGE = "This field is required."


def check(schema) -> list[str]:
    """Problems that make ``schema`` unusable as an approval form (empty = fine)."""
    if schema in (None, {}):
        return []
    if not isinstance(schema, dict):
        return [f"must be a JSON Schema object, not {type(schema).__name__}"]
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return [f"invalid JSON Schema{f' at {where}' if where else ''}: {exc.message}"]
    if schema.get("type", "object") != "object":
        return [f"must describe an object (type: object), not type {schema.get('type')!r}"]
    return []


def properties(schema: dict) -> dict[str, dict]:
    props = (schema or {}).get("properties") or {}
    return {name: (spec if isinstance(spec, dict) else {}) for name, spec in props.items()}


def field_names(schema: dict) -> list[str]:
    return list(properties(schema))


def required(schema: dict) -> set[str]:
    return set((schema or {}).get("required") or [])


def defaults(schema: dict) -> dict:
    return {name: spec["default"] for name, spec in properties(schema).items() if "default" in spec}


def validate(schema: dict, data, *, require: bool = True) -> tuple[dict, dict[str, list[str]]]:
    """(data with defaults filled in, {field: [messages]}).

    ``require=False`` (a rejection) skips the ``required`` keyword: a person
    saying no should not have to fill in what only matters for a yes; every
    value that *is* given must still be valid.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return {}, {NON_FIELD: [f"data must be a JSON object, not {type(data).__name__}"]}
    data = {**defaults(schema), **data}
    if not schema:
        return data, {}
    validator = validator_for(schema)(schema, format_checker=FormatChecker())
    errors: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(data), key=lambda e: (list(e.path), e.message)):
        if error.validator == "required":
            if not require:
                continue
            if not error.path:  # a top-level field is missing: say so on the field itself
                for name in error.validator_value:
                    if name not in data:
                        errors.setdefault(name, [])
                        if REQUIRED_MESSAGE not in errors[name]:
                            errors[name].append(REQUIRED_MESSAGE)
                continue
        path = list(error.path)
        key = str(path[0]) if path else NON_FIELD
        inner = "/".join(str(p) for p in path[1:])
        message = f"{inner}: {error.message}" if inner else error.message
        errors.setdefault(key, []).append(message)
    return data, errors
