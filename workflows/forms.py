"""Dashboard forms. They only parse what the user typed; the services decide
whether it is acceptable (and their errors are shown on the same form)."""

from __future__ import annotations

import json

from django import forms

from core import actions
from core.states import State

INPUT_PREFIX = "input__"  # keeps workflow inputs apart from "description" and "csrfmiddlewaretoken"


class ExecutionFilterForm(forms.Form):
    state = forms.ChoiceField(required=False, choices=[("", "All states")] + [(s.value, s.value) for s in State])
    q = forms.CharField(
        required=False,
        max_length=255,
        widget=forms.TextInput(attrs={"placeholder": "id or workflow name", "type": "search"}),
    )


def parse_value(text: str):
    """JSON when it parses (``3``, ``true``, ``{"a": 1}``, ``"quoted"``), else the plain string."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # nested too deep for json: keep the text
        return text


class StartExecutionForm(forms.Form):
    """One text field per workflow input, prefilled with the JSON of its default.

    An empty field means "not given": the default applies, or, for a
    required input, the service reports it missing. Type ``""`` for an
    empty string.
    """

    description = forms.CharField(required=False, max_length=2000)

    def __init__(self, spec, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.input_fields = []
        for name, default in spec.input:
            required = default is actions.REQUIRED
            field = forms.CharField(
                label=name,
                required=False,  # a missing required input is the service's error to report (shown on this field)
                initial=None if required else json.dumps(default),
                help_text="required" if required else "",
                widget=forms.TextInput(attrs={"placeholder": "required" if required else "", "spellcheck": "false"}),
            )
            self.fields[INPUT_PREFIX + name] = field
        # Inputs first, description last: the order a user fills them in.
        self.order_fields([INPUT_PREFIX + n for n, _ in spec.input] + ["description"])

    def workflow_input(self) -> dict:
        values = {}
        for name, _ in self.spec.input:
            raw = self.cleaned_data.get(INPUT_PREFIX + name, "")
            if raw.strip() != "":
                values[name] = parse_value(raw)
        return values


class UploadForm(forms.Form):
    definition = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code"}),
        strip=False,  # YAML indentation matters
    )
    update = forms.BooleanField(required=False, label="Replace workflows that already exist")
