"""What ops type for an override: a reason (required), and an optional expiry."""

from __future__ import annotations

from django import forms


class OverrideForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=1000)
    expires_in = forms.FloatField(
        required=False,
        min_value=1,
        help_text="Seconds until it reverts by itself (force open / disable only).",
    )
