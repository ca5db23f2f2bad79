"""Forms of the operator console. They parse; the services decide."""

from __future__ import annotations

import json

from django import forms

from ops.models import OperatorAction
from ops.waiting import MODES


class CompleteActionForm(forms.Form):
    state = forms.ChoiceField(choices=[("SUCCESS", "SUCCESS (the result)"), ("ERROR", "ERROR (the error)")])
    output = forms.CharField(
        label="Payload (JSON)",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "code", "spellcheck": "false"}),
        help_text='Any JSON value: {"approved": true}, "done", 3, null.',
    )

    def clean_output(self):
        text = self.cleaned_data["output"]
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None


class WaitingFilterForm(forms.Form):
    mode = forms.ChoiceField(required=False, choices=MODES)


class AuditFilterForm(forms.Form):
    kind = forms.ChoiceField(required=False, choices=[("", "All actions")] + OperatorAction.Kind.choices)
    user = forms.CharField(
        required=False, max_length=150, widget=forms.TextInput(attrs={"placeholder": "username", "type": "search"})
    )
    execution = forms.CharField(
        required=False, max_length=36, widget=forms.TextInput(attrs={"placeholder": "execution id", "type": "search"})
    )
