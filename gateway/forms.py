from django import forms

from accounts.models import validate_allowlist


class ApiKeyForm(forms.Form):
    label = forms.CharField(max_length=100)
    broker_account = forms.ChoiceField(label="Broker account")
    ip_allowlist = forms.CharField(
        label="IP allowlist",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "style": "width: 100%"}),
        validators=[validate_allowlist],
        help_text="CIDR networks, one a line (empty: anywhere).",
    )
    rate_limit = forms.CharField(
        required=False, max_length=32, help_text="e.g. 100/min (empty: the desk's default)."
    )
    max_notional = forms.DecimalField(
        required=False, max_digits=17, decimal_places=2, min_value=0.01, label="Max notional ($)"
    )

    def __init__(self, *args, accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["broker_account"].choices = [(a.pk, str(a)) for a in accounts]
