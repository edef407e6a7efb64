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
