"""Notifications: who hears of each notice, stored and shown live at once; e-mails and webhooks
queued for Celery (sending never delays an order: the notice's path only inserts and enqueues).

Recipients: an order's notices go to its trader; a desk halt to every active user (a user or
account halt to that trader); an approval needed to every operator who may decide it (staff
holding orders.approve_order, not the submitter) and, as "waiting", to the submitter.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import random
import secrets
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import requests
from celery import current_app
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import URLValidator
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from orders import events
from orders.approvals import PERMISSION as APPROVE_PERMISSION
from orders.events import Notice
from orders.models import Order
from tradedesk.broker.types import BrokerOrder

from .models import (
    CHANNELS,
    DEFAULT_KINDS,
    NOTICE_KINDS,
    TEST_KIND,
    Notification,
    NotificationPreferences,
    WebhookDelivery,
    WebhookEndpoint,
)
from .signing import DELIVERY_HEADER, SIGNATURE_HEADER, sign

# Notices delivered in the announcing thread; more (a sync batch) go to a task.
INLINE_NOTICES = 20
# Live frames per user per batch: a sync that fills hundreds of orders sends the newest few
# and a count of the rest, not a frame each (a stream connection's queue is bounded).
LIVE_FRAMES_PER_BATCH = 5
RESPONSE_EXCERPT_BYTES = 500
MAX_ENDPOINTS_PER_USER = 5


def _task(name: str):
    """A task of notifications/tasks.py by name: the tasks call these services, so services
    look them up rather than import them (as orders.sync.runs does)."""
    return current_app.tasks[f"notifications.tasks.{name}"]


# --- notices → notifications -----------------------------------------------------------
@dataclass(frozen=True)
class _Addressed:
    notice: Notice
    user_id: int
    as_approver: bool = False  # an approval_needed told to an operator who may decide it


def deliver_notices(sender=None, *, notices: list[Notice], **kwargs) -> None:
    """orders.events.notice, inside the transaction that made the notices true: a few (an
    order placed, a live update) are stored in it at once; a sync batch's many go to a Celery
    task once it commits, so the sync waits for none of it (at most one enqueue per batch)."""
    if len(notices) <= INLINE_NOTICES:
        deliver(notices)
        return
    plain = [
        {
            "kind": n.kind,
            "user_id": n.user_id,
            "order_id": n.order_id,
            "actor_id": n.actor_id,
            "details": n.details,
        }
        for n in notices
    ]
    transaction.on_commit(lambda: _task("deliver_notices_later").delay(plain))


def deliver_later(plain: list[dict]) -> None:
    """The task's half of deliver_notices: the orders read back, in one query (one deleted
    meanwhile is no longer news)."""
    orders = Order.objects.in_bulk({n["order_id"] for n in plain if n["order_id"]})
    deliver(
        [
            Notice(**n, order=orders.get(n["order_id"]))
            for n in plain
            if n["order_id"] is None or n["order_id"] in orders
        ]
    )


def deliver(notices: list[Notice]) -> None:
    """Store each recipient's notification for the channels they chose, in the caller's
    transaction (the fact and its notification commit together); once it commits, publish
    the page ones live and queue e-mails and webhooks."""
    addressed = _addressed(notices)
    if not addressed:
        return
    made = _store(addressed)
    if made:
        transaction.on_commit(lambda: _send_out(made))


def _send_out(made: list[Notification]) -> None:
    _publish([n for n in made if n.on_page])
    queued = [n.pk for n in made if n.by_email or n.by_webhook]
    if queued:
        _task("dispatch_notifications").delay(queued)


def _addressed(notices: list[Notice]) -> list[_Addressed]:
    addressed = []
    for notice in notices:
        if notice.kind == "approval_needed":
            addressed.append(_Addressed(notice, notice.user_id))
            addressed += [
                _Addressed(notice, pk, as_approver=True) for pk in _approvers(notice.user_id)
            ]
        elif notice.user_id is None:  # desk-wide
            everyone = User.objects.filter(is_active=True).values_list("pk", flat=True)
            addressed += [_Addressed(notice, pk) for pk in everyone]
        else:
            addressed.append(_Addressed(notice, notice.user_id))
    return addressed


def _approvers(submitter_id: int) -> list[int]:
    """Operators who may decide an order (orders.approvals.ensure_may_decide), bar its own."""
    app_label, codename = APPROVE_PERMISSION.split(".")
    holds = Q(is_superuser=True)
    for path in ("user_permissions", "groups__permissions"):
        holds |= Q(**{f"{path}__codename": codename, f"{path}__content_type__app_label": app_label})
    operators = User.objects.filter(holds, is_active=True, is_staff=True).exclude(pk=submitter_id)
    return list(operators.values_list("pk", flat=True).distinct())


def preferences_of(user: User) -> NotificationPreferences:
    """The user's preferences (unsaved defaults if they never chose)."""
    try:
        return user.notification_preferences
    except NotificationPreferences.DoesNotExist:
        return NotificationPreferences(user=user)


def save_preferences(user: User, chosen: dict[str, list[str]]) -> NotificationPreferences:
    """Store the kinds chosen per channel (unknown kinds or channels: ValidationError)."""
    if set(chosen) - set(CHANNELS) or any(set(k) - set(NOTICE_KINDS) for k in chosen.values()):
        raise ValidationError("Unknown channel or kind.")
    values = {
        channel: sorted(set(chosen.get(channel, [])), key=NOTICE_KINDS.index)
        for channel in CHANNELS
    }
    prefs, _ = NotificationPreferences.objects.update_or_create(user=user, defaults=values)
    return prefs


# --- storing: the recipients' preferences applied in the INSERT itself -------------------
# Each addressed notice is a VALUES row; the INSERT ... SELECT joins it to its recipient
# (active users only), their preferences (DEFAULT_KINDS without a row) and whether they have
# an active webhook endpoint, and stores it only if some channel is left: one statement for
# any number of notices, where reading the recipients first cost one more (and the ORM's
# query building, the larger part of a notification's cost on the order path).
_STORED = ("user_id", "kind", "order_id", "title", "body", "detail", "order_state")
# A VALUES row: its place among the notices, what is stored, and each channel's default for
# the kind (for a recipient without preferences).
_VALUES = ("position", *_STORED, *(f"default_{channel}" for channel in CHANNELS))
# The Notification field whose type each value takes (position: an integer).
_TYPED_AS = {
    "user_id": "user",
    "order_id": "order",
    "default_page": "on_page",
    "default_email": "by_email",
    "default_webhook": "by_webhook",
}
_RETURNED = (
    "id",
    "user_id",
    "kind",
    "order_id",
    "title",
    "body",
    "on_page",
    "by_email",
    "by_webhook",
)
# SQLite allows 32,766 parameters per statement (created_at is one more).
_ROWS_PER_STATEMENT = (32_766 - 1) // len(_VALUES)


def _typed(name: str) -> str:
    """The placeholder of value `name`, typed as the column it fills on PostgreSQL (which
    types a VALUES column of NULLs as text); SQLite takes values as they come (and its CAST
    would turn a datetime into a number)."""
    if connection.vendor != "postgresql":
        return "%s"
    if name == "position":
        return "CAST(%s AS integer)"
    field = Notification._meta.get_field(_TYPED_AS.get(name, name))
    return f"CAST(%s AS {field.db_type(connection)})"


def _kind_chosen(channel: str) -> str:
    """SQL: the row's kind is among those its recipient chose for `channel`."""
    if connection.vendor == "postgresql":
        held = f"p.{channel} @> jsonb_build_array(v.kind)"
    else:
        held = f"EXISTS (SELECT 1 FROM json_each(p.{channel}) WHERE value = v.kind)"  # noqa: S608
    return f"CASE WHEN p.id IS NULL THEN v.default_{channel} ELSE {held} END"


@functools.cache
def _insert_sql(vendor: str, rows: int) -> str:  # vendor: the statement differs per database
    row = "(" + ", ".join(map(_typed, _VALUES)) + ")"
    named = ", ".join(f"column{n} AS {name}" for n, name in enumerate(_VALUES, 1))
    stored = ", ".join(_STORED)
    return f"""
        INSERT INTO {Notification._meta.db_table}
            ({stored}, on_page, by_email, by_webhook, created_at)
        SELECT {stored}, on_page, by_email, by_webhook, {_typed("created_at")} FROM (
            SELECT v.*,
                {_kind_chosen("page")} AS on_page,
                (u.email <> '' AND {_kind_chosen("email")}) AS by_email,
                (EXISTS (
                    SELECT 1 FROM {WebhookEndpoint._meta.db_table} e
                    WHERE e.user_id = u.id AND e.active
                ) AND {_kind_chosen("webhook")}) AS by_webhook
            FROM (SELECT {named} FROM (VALUES {", ".join([row] * rows)}) AS addressed) AS v
            JOIN {User._meta.db_table} u ON u.id = v.user_id AND u.is_active
            LEFT JOIN {NotificationPreferences._meta.db_table} p ON p.user_id = u.id
        ) AS chosen
        WHERE on_page OR by_email OR by_webhook
        ORDER BY position
        RETURNING {", ".join(_RETURNED)}
    """  # noqa: S608 (our identifiers; the values are parameters)


def _store(addressed: list[_Addressed]) -> list[Notification]:
    """Insert the notifications the recipients' preferences call for; the stored ones, in
    the order of `addressed`."""
    now = timezone.now()
    created_at = Notification._meta.get_field("created_at").get_db_prep_save(now, connection)
    rows = [_row(position, item) for position, item in enumerate(addressed)]
    made = []
    # Inside the caller's transaction this adds nothing; alone (a task's batch of thousands,
    # several statements) it stores all or nothing.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            part = rows[start : start + _ROWS_PER_STATEMENT]
            # created_at's placeholder comes first in the statement, then the rows'.
            cursor.execute(
                _insert_sql(connection.vendor, len(part)),
                [created_at, *(value for row in part for value in row)],
            )
            for pk, user_id, kind, order_id, title, body, *chosen in cursor.fetchall():
                page, email, webhook = map(bool, chosen)  # SQLite answers 0 and 1
                made.append(
                    Notification(
                        pk=pk,
                        user_id=user_id,
                        kind=kind,
                        order_id=order_id,
                        title=title,
                        body=body,
                        on_page=page,
                        by_email=email,
                        by_webhook=webhook,
                        created_at=now,
                    )
                )
    # Inserted in `addressed`'s order (ORDER BY position), so numbered in it.
    return sorted(made, key=lambda notification: notification.pk)


def _row(position: int, item: _Addressed) -> tuple:
    """The VALUES of one addressed notice (_VALUES), prepared for the database."""
    notice = item.notice
    title, body = _wording(notice, as_approver=item.as_approver)
    state = _order_state(notice) if notice.order is not None else None
    fields = Notification._meta
    return (
        position,
        item.user_id,
        notice.kind,
        notice.order_id,
        title[:200],
        body,
        fields.get_field("detail").get_db_prep_save(notice.details, connection),
        fields.get_field("order_state").get_db_prep_save(state, connection),
        *(notice.kind in DEFAULT_KINDS[channel] for channel in CHANNELS),
    )


def _order_state(notice: Notice) -> dict:
    order = notice.order
    broker_order_id = order.broker_order_id if isinstance(order, Order) else order.id
    frame = events.order_frame(
        order, "", pk=notice.order_id, broker_order_id=broker_order_id, timestamp=None
    )
    state = {
        key: value for key, value in frame.items() if key not in ("type", "event", "timestamp")
    }
    for key in ("qty", "filled_qty", "filled_avg_price"):
        if state[key] is not None:
            state[key] = _number(state[key])
    return state


def _number(value: Decimal | str | None) -> str:
    """A quantity or price as a trader writes it: 2, 187.2."""
    if value is None:
        return "?"
    return format(Decimal(value).normalize(), "f")


def _what(order: Order | BrokerOrder) -> str:
    amount = _number(order.qty) if order.qty is not None else f"${_number(order.notional)}"
    return f"{order.side} {amount} {order.symbol}"


def _wording(notice: Notice, *, as_approver: bool) -> tuple[str, str]:
    """A notification's title and body."""
    order, details = notice.order, notice.details
    kind = notice.kind
    if kind in ("halt_on", "halt_off"):
        scope = {"desk": "the whole desk", "user": "your trading", "broker_account": "your account"}
        covered = scope.get(details.get("scope"), "trading")
        if kind == "halt_on":
            mode = "reduce-only" if details.get("mode") == "reducing" else "halted"
            return f"Halt set: {covered} is {mode}", details.get("reason", "")
        return f"Halt lifted: {covered} may trade again", details.get("reason", "")
    what = _what(order)
    price = _number(order.filled_avg_price)
    if kind == "fill":
        return f"Filled: {order.side} {_number(order.filled_qty)} {order.symbol} @ {price}", ""
    if kind == "partial_fill":
        return (
            f"Partly filled: {order.side} {_number(order.filled_qty)} of {_number(order.qty)} "
            f"{order.symbol} @ {price}",
            "",
        )
    if kind == "rejected":
        return f"Rejected: {what}", details.get("message") or details.get("reason", "")
    if kind == "lost":
        return f"Lost: {what}", details.get("reason", "")
    if kind == "approval_needed":
        notional = details.get("notional") or "unknown"
        over = f"Notional {notional} is over the threshold of {details.get('threshold')}."
        if as_approver:
            return f"Approval needed: {order.user.username}'s {what}", over
        return f"Waiting for approval: {what}", f"{over} Another operator must approve it."
    decision = details.get("decision")
    titles = {
        "approved": "Approved",
        "rejected": "Approval rejected",
        "expired": "Approval expired",
    }
    return f"{titles.get(decision, 'Approval decided')}: {what}", details.get("reason", "")


def notification_frame(notification: Notification) -> dict:
    """The stream's `notification` frame."""
    return {
        "type": "notification",
        "id": notification.pk,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "order_id": notification.order_id,
        "url": link_of(notification),
        "created_at": notification.created_at.isoformat(),
        "count": 1,
    }


def link_of(notification: Notification) -> str:
    return (
        f"/orders/{notification.order_id}/" if notification.order_id else "/accounts/notifications/"
    )


def _publish(notifications: list[Notification]) -> None:
    """One channel-layer message per recipient: its newest frames and a count of the rest.
    Market's stream consumer forwards them (`notification_message`), never importing this app."""
    by_user = defaultdict(list)
    for notification in notifications:
        by_user[notification.user_id].append(notification_frame(notification))
    if not by_user:
        return
    payloads = {}
    for user_id, frames in by_user.items():
        shown = frames[-LIVE_FRAMES_PER_BATCH:]
        if len(frames) > len(shown):
            more = len(frames) - len(shown)
            shown.insert(
                0,
                {
                    **shown[0],
                    "id": None,
                    "kind": "more",
                    "title": f"{more} more notifications",
                    "body": "",
                    "order_id": None,
                    "url": "/accounts/notifications/",
                    "count": more,
                },
            )
        payloads[events.user_group(user_id)] = {"type": "notification.message", "messages": shown}

    async def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            for group, payload in payloads.items():
                await layer.group_send(group, payload)

    # Handed over without waiting (in turn with this thread's other sends); a failure is
    # logged (the rows are stored: the page shows them even when the layer is down).
    events.send_from_sync(send)


# --- reading and marking -----------------------------------------------------------------
def mark_read(user: User, ids: list[int] | None = None) -> int:
    """Mark the user's unread notifications read (`ids`: only those); how many."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=ids)
    return unread.update(read_at=timezone.now())


# --- e-mail ------------------------------------------------------------------------------
def send_email(notification: Notification) -> bool:
    """E-mail one notification to its user, once (a redelivered task sends nothing)."""
    claimed = Notification.objects.filter(pk=notification.pk, emailed_at__isnull=True).update(
        emailed_at=timezone.now()
    )
    if not claimed or not notification.user.email:
        return False
    lines = [notification.body, "", f"{settings.DESK_URL}{link_of(notification)}"]
    try:
        send_mail(
            f"TradeDesk: {notification.title}",
            "\n".join(line for line in lines if line is not None).lstrip(),
            settings.DEFAULT_FROM_EMAIL,
            [notification.user.email],
        )
    except Exception:
        # Unclaimed, so the task's retry sends it.
        Notification.objects.filter(pk=notification.pk).update(emailed_at=None)
        raise
    return True


# --- webhooks ----------------------------------------------------------------------------
class UnsafeAddress(ValidationError):
    """A webhook URL that resolves to an address the desk must not call."""


def ensure_safe_url(url: str) -> None:
    """An http(s) URL whose host resolves to public addresses only (unless
    WEBHOOK_ALLOW_PRIVATE_ADDRESSES): the desk must not be a way into its own network.
    Raises ValidationError (UnsafeAddress for the address)."""
    URLValidator(schemes=["http", "https"])(url)
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValidationError("A webhook URL carries no credentials.")
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        resolved = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeAddress(f"{parts.hostname} does not resolve.") from error
    for *_, address in resolved:
        ip = ipaddress.ip_address(address[0].split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not ip.is_global:
            raise UnsafeAddress(
                f"{parts.hostname} resolves to {ip}, a loopback, private or reserved address."
            )


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def add_endpoint(user: User, url: str) -> NewEndpoint:
    """A webhook endpoint with a fresh signing secret. Raises ValidationError for an unsafe or
    malformed URL, or past MAX_ENDPOINTS_PER_USER."""
    url = url.strip()
    ensure_safe_url(url)
    if WebhookEndpoint.objects.filter(user=user).count() >= MAX_ENDPOINTS_PER_USER:
        raise ValidationError(f"At most {MAX_ENDPOINTS_PER_USER} webhook endpoints per user.")
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    endpoint = WebhookEndpoint.objects.create(user=user, url=url, secret=secret)
    return NewEndpoint(endpoint, secret)


def set_endpoint_active(endpoint: WebhookEndpoint, active: bool) -> WebhookEndpoint:
    endpoint.active = active
    endpoint.save(update_fields=["active"])
    return endpoint


def send_test(endpoint: WebhookEndpoint) -> Notification:
    """A `test` notification delivered to this endpoint alone (not listed on the page)."""
    notification = Notification.objects.create(
        user=endpoint.user,
        kind=TEST_KIND,
        title="Test delivery from TradeDesk",
        body="Your endpoint received and verified this, or it will show in the delivery log.",
        on_page=False,
        by_webhook=True,
    )
    endpoint_id = endpoint.pk
    transaction.on_commit(
        lambda: _task("deliver_webhook").delay(notification.pk, endpoint_id, attempt=1)
    )
    return notification


def webhook_body(notification: Notification) -> bytes:
    return json.dumps(
        {
            "id": notification.pk,
            "kind": notification.kind,
            "created_at": notification.created_at.isoformat(),
            "title": notification.title,
            "body": notification.body,
            "order": notification.order_state,
            "details": notification.detail,
        },
        separators=(",", ":"),
        cls=Notification._meta.get_field("detail").encoder,
    ).encode()


def retry_countdown(attempt: int) -> float:
    """Seconds before the attempt after `attempt`: 2**attempt, plus up to half again of jitter
    (so endpoints that failed together are not retried together)."""
    base = 2**attempt
    return base + random.uniform(0, base / 2)  # jitter, not a secret


def attempt_webhook(notification: Notification, endpoint: WebhookEndpoint, attempt: int):
    """POST the notification to the endpoint once, signed; every attempt is a WebhookDelivery.
    Its outcome: delivered (2xx), retrying (next_attempt_at set) or failed (attempts used up,
    or the endpoint disabled meanwhile). Redirects are not followed."""
    started_at = timezone.now()
    delivery = WebhookDelivery.objects.create(
        notification=notification,
        endpoint=endpoint,
        attempt=attempt,
        at=started_at,
        outcome=WebhookDelivery.RETRYING,
    )
    body = webhook_body(notification)
    started = time.monotonic()
    delivered = False
    try:
        if not isinstance(endpoint.secret, str):
            raise ValidationError("The signing secret can't be read with the configured keys.")
        ensure_safe_url(endpoint.url)  # again: what a name resolves to can change
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "TradeDesk-Webhooks/1",
            SIGNATURE_HEADER: sign(endpoint.secret, body, int(time.time())),
            DELIVERY_HEADER: str(delivery.pk),
        }
        with requests.post(
            endpoint.url,
            data=body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
            stream=True,
        ) as response:
            delivery.status_code = response.status_code
            excerpt = response.raw.read(RESPONSE_EXCERPT_BYTES, decode_content=True) or b""
            delivery.response_excerpt = excerpt.decode("utf-8", "replace")
            delivered = 200 <= response.status_code < 300
    except (requests.RequestException, ValidationError, OSError) as error:
        delivery.error = (
            "; ".join(error.messages) if isinstance(error, ValidationError) else repr(error)
        )[:1000]
    delivery.duration_ms = round((time.monotonic() - started) * 1000)
    endpoint.refresh_from_db(fields=["active"])
    if delivered:
        delivery.outcome = WebhookDelivery.DELIVERED
    elif attempt >= settings.WEBHOOK_MAX_ATTEMPTS or not endpoint.active:
        delivery.outcome = WebhookDelivery.FAILED
    else:
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=retry_countdown(attempt))
    delivery.save()
    return delivery


def dispatch(notification_ids: list[int]) -> None:
    """Queue each notification's e-mail and one webhook delivery per active endpoint."""
    notifications = Notification.objects.filter(pk__in=notification_ids).select_related("user")
    endpoints = defaultdict(list)
    for endpoint_id, user_id in WebhookEndpoint.objects.filter(
        user__in={n.user_id for n in notifications if n.by_webhook}, active=True
    ).values_list("pk", "user_id"):
        endpoints[user_id].append(endpoint_id)
    for notification in notifications:
        if notification.by_email:
            _task("send_notification_email").delay(notification.pk)
        if notification.by_webhook:
            for endpoint_id in endpoints[notification.user_id]:
                _task("deliver_webhook").delay(notification.pk, endpoint_id, attempt=1)
