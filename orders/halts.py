"""The kill switch: setting and lifting trading halts, audited and announced."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import BrokerAccount, User

from . import selectors, services
from .events import announce
from .models import TradingHalt

REASON_MAX = TradingHalt._meta.get_field("lift_reason").max_length


class HaltAlreadyLifted(Exception):
    """The halt was lifted before: a halt is lifted once, and its lift stays on record."""


@dataclass
class HaltSet:
    halt: TradingHalt
    # One outcome per covered order when cancel_open_orders was asked.
    cancels: list[services.CancelOutcome] = field(default_factory=list)


def _announce(kind: str, halt: TradingHalt, operator: User, reason: str) -> None:
    # The trader concerned: the user halted, or the halted account's owner (desk: everyone).
    owner = halt.broker_account.user_id if halt.broker_account_id else halt.user_id
    announce(
        kind,
        user_id=owner,
        actor_id=operator.pk,
        halt_id=halt.pk,
        scope=halt.scope,
        mode=halt.mode,
        broker_account_id=halt.broker_account_id,
        reason=reason,
    )


def set_halt(
    *,
    scope: str,
    target: User | BrokerAccount | None,
    mode: str,
    reason: str,
    operator: User,
    cancel_open_orders: bool = False,
) -> HaltSet:
    """Turn a halt on, recorded with its operator and announced after commit; then, if asked,
    cancel every open order it covers through the ordinary cancel path (audited as the
    operator; a refusal is reported per order, never raised). Raises ValidationError when the
    target doesn't fit the scope, the mode is unknown or the reason is empty."""
    if (scope == TradingHalt.SCOPE_DESK) != (target is None):
        raise ValidationError("A desk halt has no target; a user or account halt needs one.")
    halt = TradingHalt(
        scope=scope,
        mode=mode,
        reason=reason.strip(),
        created_by=operator,
        user=target if scope == TradingHalt.SCOPE_USER else None,
        broker_account=target if scope == TradingHalt.SCOPE_BROKER_ACCOUNT else None,
    )
    halt.full_clean()
    with transaction.atomic():
        halt.save()
        _announce("halt_on", halt, operator, halt.reason)
    result = HaltSet(halt=halt)
    if cancel_open_orders:
        covered = selectors.open_orders_under(halt).filter(parent__isnull=True)
        result.cancels = services.cancel_each(covered, source="admin", actor=operator)
    return result


def lift_halt(halt: TradingHalt, *, operator: User, reason: str) -> TradingHalt:
    """Lift a halt: active=False with who, when and why (the record stays), announced after
    commit. Raises HaltAlreadyLifted for a halt lifted before, ValidationError for an empty
    or overlong reason."""
    reason = reason.strip()
    if not reason or len(reason) > REASON_MAX:
        raise ValidationError({"lift_reason": f"Say why, in 1 to {REASON_MAX} characters."})
    with transaction.atomic():
        current = TradingHalt.objects.select_for_update().get(pk=halt.pk)
        if not current.active:
            raise HaltAlreadyLifted(current.pk)
        current.active = False
        current.lifted_by = operator
        current.lifted_at = timezone.now()
        current.lift_reason = reason
        current.save(update_fields=["active", "lifted_by", "lifted_at", "lift_reason"])
        _announce("halt_off", current, operator, reason)
    return current
