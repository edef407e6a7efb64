"""Forms of the order pages (parsing only: the judging is validation's and the services')."""

from __future__ import annotations

from django import forms

from tradedesk.broker import types

from .history import OrderFilters
from .models import STATUSES

STATUS_FILTERS = [("all", "All"), ("open", "Open"), ("closed", "Closed")] + [
    (status, status.replace("_", " ")) for status in STATUSES
]


class OrderFilterForm(forms.Form):
    status = forms.ChoiceField(choices=STATUS_FILTERS, required=False)
    symbol = forms.RegexField(regex=r"^[A-Za-z]{1,5}(\.[A-Za-z]{1,2})?$", required=False)
    side = forms.ChoiceField(
        choices=[("", "Any")] + [(s, s) for s in types.ORDER_SIDES], required=False
    )
    after = forms.DateField(required=False, label="From")
    before = forms.DateField(required=False, label="To")
    cursor = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def filters(self) -> OrderFilters:
        data = self.cleaned_data
        return OrderFilters(
            status=data["status"] or "all",
            symbol=data["symbol"].upper(),
            side=data["side"],
            after=data["after"],
            before=data["before"],
        )


class ReplaceOrderForm(forms.Form):
    """The replace form: parsing only (the order it would become is the gate's to judge)."""

    qty = forms.DecimalField(max_digits=24, decimal_places=9, required=False)
    limit_price = forms.DecimalField(max_digits=24, decimal_places=9, required=False)
    stop_price = forms.DecimalField(max_digits=24, decimal_places=9, required=False)
    trail = forms.DecimalField(max_digits=24, decimal_places=9, required=False)
    time_in_force = forms.CharField(max_length=8, required=False)

    def clean(self):
        data = super().clean()
        if not any(value not in (None, "") for value in data.values()):
            raise forms.ValidationError("Change at least one field.")
        return data

    def replace_request(self) -> types.ReplaceRequest:
        data = self.cleaned_data
        return types.ReplaceRequest(
            qty=data["qty"],
            limit_price=data["limit_price"],
            stop_price=data["stop_price"],
            trail=data["trail"],
            time_in_force=data["time_in_force"] or None,
        )
