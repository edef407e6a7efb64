from __future__ import annotations

from django import forms

from .models import CHANNELS, KIND_LABELS, NOTICE_KINDS


class PreferencesForm(forms.Form):
    """One checkbox per channel and kind, named `<channel>:<kind>`."""

    def __init__(self, *args, initial_kinds: dict[str, list[str]], **kwargs):
        super().__init__(*args, **kwargs)
        for channel in CHANNELS:
            for kind in NOTICE_KINDS:
                self.fields[f"{channel}:{kind}"] = forms.BooleanField(
                    required=False,
                    initial=kind in initial_kinds[channel],
                    label=f"{KIND_LABELS[kind]} by {channel}",
                )

    def chosen(self) -> dict[str, list[str]]:
        return {
            channel: [k for k in NOTICE_KINDS if self.cleaned_data[f"{channel}:{k}"]]
            for channel in CHANNELS
        }

    def rows(self):
        """(label, [bound field per channel]) per kind, for the table."""
        return [
            (KIND_LABELS[kind], [self[f"{channel}:{kind}"] for channel in CHANNELS])
            for kind in NOTICE_KINDS
        ]


class EndpointForm(forms.Form):
    url = forms.URLField(
        label="Endpoint URL",
        max_length=500,
        assume_scheme="https",
        help_text="Receives a signed POST for each notification you chose for webhooks.",
    )
