"""Order templates: a ticket saved under a name, placed again through the gate.

Saving checks only that a template is well formed (OrderTemplate's field rules): whether an
order from it may be placed is the gate's question, asked each time one is placed."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import BrokerAccount, User
from accounts.selectors import broker_account_for

from . import services
from .models import OrderTemplate
from .validation import OrderInput

_TERM_NAMES = frozenset(field.name for field in dataclasses.fields(OrderInput)) - {
    "client_order_id"
}


class TemplateInvalid(Exception):
    """A template's fields are not well formed: `errors`, field -> [ValidationError]."""

    def __init__(self, error: ValidationError):
        super().__init__("invalid template")
        self.errors = error.error_dict if hasattr(error, "error_dict") else {None: error.error_list}

    def as_issues(self) -> list[dict]:
        """The errors in the order error shape: [{code, field, message}]."""
        return [
            {
                "code": error.code or "invalid",
                "field": None if field == "__all__" else field,
                "message": " ".join(error.messages),
            }
            for field, errors in self.errors.items()
            for error in errors
        ]


def _stored(template: OrderTemplate) -> OrderTemplate:
    """Check the fields, then save; a name taken meanwhile is the same error as one taken
    before."""
    template.name = template.name.strip()
    try:
        template.full_clean()
        try:
            with transaction.atomic():
                template.save()
        except IntegrityError:
            template.validate_constraints()  # raises the constraint's own error
            raise
    except ValidationError as error:
        raise TemplateInvalid(error) from None
    return template


def save_template(
    *,
    owner: User,
    name: str,
    broker_account: BrokerAccount | None = None,
    template: OrderTemplate | None = None,
    **terms,
) -> OrderTemplate:
    """Save the owner's template `name` (unique per owner, ignoring case): a new one, or
    `template` rewritten whole. `terms` are OrderInput's fields (its defaults for those not
    given). Raises TemplateInvalid."""
    template = template or OrderTemplate(owner=owner)
    template.name, template.broker_account = name, broker_account
    template.set_terms(OrderInput(**terms))
    return _stored(template)


def update_template(template: OrderTemplate, **changes) -> OrderTemplate:
    """Rename a template, move it to another of its owner's accounts (`broker_account`,
    None for the default one) or change its order fields (OrderInput's names). Raises
    TemplateInvalid, or TypeError for a name that is none of these."""
    unknown = set(changes) - _TERM_NAMES - {"name", "broker_account"}
    if unknown:
        raise TypeError(f"Not a template field: {', '.join(sorted(unknown))}")
    if "name" in changes:
        template.name = changes["name"]
    if "broker_account" in changes:
        template.broker_account = changes["broker_account"]
    terms = {name: value for name, value in changes.items() if name in _TERM_NAMES}
    template.set_terms(dataclasses.replace(template.order_input(), **terms))
    return _stored(template)


def delete_template(template: OrderTemplate) -> None:
    template.delete()


def place_from_template(
    template: OrderTemplate,
    *,
    qty: Decimal | None = None,
    notional: Decimal | None = None,
    client_order_id: str = "",
    source: str,
    confirm_warnings: bool = True,
    second_factor_verified: bool = False,
) -> services.Placement:
    """Place the template's order for its owner, through place_order (the one gate: the kill
    switch, rate limit, limits, buying power, approvals...); raises as place_order does.

    A `qty` given replaces the template's quantity or notional, as a `notional` does: both
    given, the gate refuses the order as any other with both. On the template's broker
    account, else the owner's default one."""
    overrides: dict = {"client_order_id": client_order_id}
    if qty is not None or notional is not None:
        overrides |= {"qty": qty, "notional": notional}
    return services.place_order(
        user=template.owner,
        broker_account=broker_account_for(template.owner, template.broker_account_id),
        order_input=template.order_input(**overrides),
        source=source,
        confirm_warnings=confirm_warnings,
        second_factor_verified=second_factor_verified,
    )
