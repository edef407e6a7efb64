"""/accounts/api-keys/: the trader's gateway keys (thin: logic is in services)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import second_factor_verified
from accounts.selectors import active_broker_accounts, broker_account_for

from . import selectors, services
from .forms import ApiKeyForm

ISSUED_SESSION_KEY = "gateway.issued_api_key"


@login_required
@require_http_methods(["GET", "POST"])
def api_keys_page(request):
    accounts = list(active_broker_accounts(request.user))
    form = ApiKeyForm(request.POST or None, accounts=accounts)
    # The secret of a key just issued, shown on this one GET after the POST's redirect (so a
    # reload neither shows it again nor submits the form twice), then gone from the session.
    issued = request.session.pop(ISSUED_SESSION_KEY, None) if request.method == "GET" else None
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                new_key = services.create_api_key(
                    user=request.user,
                    broker_account=broker_account_for(request.user, data["broker_account"]),
                    label=data["label"],
                    ip_allowlist=data["ip_allowlist"],
                    rate_limit=data["rate_limit"],
                    max_notional=data["max_notional"],
                    second_factor_verified=second_factor_verified(request),
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                request.session[ISSUED_SESSION_KEY] = {
                    "label": new_key.api_key.label,
                    "key_id": new_key.api_key.key_id,
                    "secret": new_key.secret,
                }
                return redirect("api-keys-page")
    return render(
        request,
        "gateway/api_keys.html",
        {"keys": selectors.api_keys_for(request.user), "form": form, "issued": issued},
        status=status,
    )


@login_required
@require_POST
def revoke_key(request, key_pk: int):
    revoked = services.revoke_api_key(selectors.api_key_for(request.user, key_pk))
    messages.success(request, f"Revoked {revoked.label} ({revoked.key_id}).")
    return redirect("api-keys-page")
