from django import forms
from django.contrib.auth.forms import UserCreationForm

from .models import User


class SignupForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("username", "email")


class LinkAlpacaAccountForm(forms.Form):
    label = forms.CharField(max_length=100)
    key_id = forms.CharField(max_length=128, label="API key id")
    secret = forms.CharField(max_length=256, label="API secret", widget=forms.PasswordInput)
    mode = forms.ChoiceField(
        choices=[("paper", "Paper trading"), ("live", "Live trading (real money)")],
        initial="paper",
        widget=forms.RadioSelect,
    )
    confirm_live = forms.BooleanField(
        required=False, label="I understand that orders on a live account use real money."
    )
    is_default = forms.BooleanField(required=False, label="Make it my default account")


class LoginForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(max_length=4096, strip=False, widget=forms.PasswordInput)


class CodeForm(forms.Form):
    otp = forms.CharField(
        max_length=32,
        label="Code",
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
    )


class AllowlistForm(forms.Form):
    ip_allowlist = forms.CharField(
        required=False,
        label="Allowed networks",
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="CIDR networks or addresses, one a line (e.g. 203.0.113.0/24). Empty: anywhere.",
    )
