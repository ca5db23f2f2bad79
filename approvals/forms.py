"""Forms of the approval pages.

``AnswerForm`` is built from the approval's JSON Schema, but only *parses*
what was typed (a number field gives an int when it reads as one, otherwise
the text, so the schema can say what is wrong). Whether the data is
acceptable is decided by ``approvals.schema.validate`` in the service, the
same check the REST API gets; its errors come back onto these fields.
"""

from __future__ import annotations

import json

from django import forms

from approvals import schema
from approvals.models import Approval

DATA_PREFIX = "data__"  # keeps form fields apart from "comment" and "decision"
INBOX_STATUSES = [("pending", "Waiting for me"), ("answered", "Answered by me"), ("expired", "Expired"), ("all", "All")]
AGES = [
    ("", "Any age"),
    ("1h", "Newer than 1 hour"),
    ("1d", "Newer than 1 day"),
    ("old", "Older than 1 day"),
    ("week", "Older than 7 days"),
]


class InboxFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=INBOX_STATUSES)
    workflow = forms.CharField(
        required=False, max_length=255, widget=forms.TextInput(attrs={"placeholder": "workflow name", "type": "search"})
    )
    age = forms.ChoiceField(required=False, choices=AGES)


def _field_for(name: str, spec: dict) -> forms.Field:
    kind = spec.get("type")
    common = {
        "label": spec.get("title") or name,
        "help_text": spec.get("description", ""),
        # Django must not refuse anything itself: the schema is the one judge.
        "required": False,
        "initial": spec.get("default"),
    }
    if "enum" in spec:
        choices = [("", "—")] + [(json.dumps(v), str(v)) for v in spec["enum"]]
        initial = json.dumps(spec["default"]) if "default" in spec else ""
        return forms.ChoiceField(**{**common, "initial": initial}, choices=choices)
    if kind == "boolean":
        return forms.BooleanField(**common)
    if kind in ("integer", "number"):
        attrs = {"step": "1" if kind == "integer" else "any"}
        attrs.update({k: spec[s] for k, s in (("min", "minimum"), ("max", "maximum")) if s in spec})
        return forms.CharField(**common, widget=forms.NumberInput(attrs=attrs))
    if kind == "array" and isinstance(spec.get("items"), dict) and "enum" in spec["items"]:
        choices = [(json.dumps(v), str(v)) for v in spec["items"]["enum"]]
        initial = [json.dumps(v) for v in spec.get("default") or []]
        return forms.MultipleChoiceField(
            **{**common, "initial": initial}, choices=choices, widget=forms.CheckboxSelectMultiple
        )
    if kind == "string" or (kind is None and not spec.get("properties")):
        fmt = spec.get("format")
        if fmt == "textarea" or spec.get("maxLength", 0) > 200:
            return forms.CharField(**common, strip=False, widget=forms.Textarea(attrs={"rows": 4}))
        input_type = {"date": "date", "email": "email", "date-time": "datetime-local", "uri": "url"}.get(fmt, "text")
        return forms.CharField(**common, strip=False, widget=forms.TextInput(attrs={"type": input_type}))
    # Objects and free-form arrays: JSON typed by hand.
    initial = json.dumps(spec["default"]) if "default" in spec else None
    return forms.CharField(
        **{**common, "initial": initial},
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "code", "placeholder": "JSON"}),
    )


class AnswerForm(forms.Form):
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, approval: Approval, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.approval = approval
        props = schema.properties(approval.form)
        order = [n for n in approval.form_order if n in props] + [n for n in props if n not in approval.form_order]
        needed = schema.required(approval.form)
        self.specs = {}
        for name in order:
            self.fields[DATA_PREFIX + name] = _field_for(name, props[name])
            self.fields[DATA_PREFIX + name].schema_required = name in needed
            self.specs[name] = props[name]
        self.order_fields([DATA_PREFIX + n for n in order] + ["comment"])

    def data_fields(self):
        return [self[DATA_PREFIX + name] for name in self.specs]

    def schema_data(self) -> dict:
        """The typed values; a field left empty is left out (so defaults and ``required`` apply)."""
        out = {}
        for name, spec in self.specs.items():
            value = self.cleaned_data.get(DATA_PREFIX + name)
            parsed = _parse(value, spec)
            if parsed is not _EMPTY:
                out[name] = parsed
        return out

    def add_schema_errors(self, field_errors: dict[str, list[str]]) -> None:
        for key, messages in field_errors.items():
            field = DATA_PREFIX + key if key in self.specs else None
            for message in messages:
                if field is None and key != schema.NON_FIELD:  # a key the form has no field for
                    message = f"{key}: {message}"
                self.add_error(field, message)


_EMPTY = object()


def _parse(value, spec: dict):
    kind = spec.get("type")
    if "enum" in spec:
        return json.loads(value) if value else _EMPTY
    if kind == "boolean":
        return bool(value)
    if isinstance(value, list):  # checkboxes of an enum array
        return [json.loads(v) for v in value]
    if value is None or value == "":
        return _EMPTY
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value  # the schema reports "'abc' is not of type 'integer'"
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in value else number
    if kind in ("string", None) and not ("properties" in spec or "items" in spec):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
