"""Four eyes: an order above its approval threshold waits, nothing at the broker, until a
second operator approves (submitted, re-judged by the gate) or rejects it, or it expires."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, connections
from django.utils import timezone

from accounts.selectors import default_broker_account
from conftest import client_for, require_service
from orders import approvals, events, services, tasks
from orders.models import Order, TradingHalt
from orders.validation import OrderInput
from tradedesk.broker import types

D = Decimal


@pytest.fixture(autouse=True)
def threshold(settings):
    settings.APPROVAL_NOTIONAL = D("1000")
    settings.APPROVAL_TIMEOUT = 600


@pytest.fixture
def operator(make_user):
    user = make_user("olga", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="approve_order"))
    return user


@pytest.fixture
def notices():
    heard = []

    def listen(sender, notices, **kwargs):
        heard.extend((n.kind, n.details.get("decision")) for n in notices)

    events.notice.connect(listen)
    yield heard
    events.notice.disconnect(listen)


def big_buy(user, qty="100", **fields) -> Order:
    """A market buy well above $1,000 (AAPL trades far above $10 on the paper exchange)."""
    values = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"}
    return services.place_order(
        user=user,
        broker_account=default_broker_account(user),
        order_input=OrderInput(**(values | {"qty": D(qty)} | fields)),
    ).order


def event_names(order) -> list[str]:
    return list(order.events.values_list("event", flat=True))


@pytest.mark.django_db
def test_a_small_order_goes_straight_to_the_broker(trader):
    order = big_buy(trader, qty="1", type="limit", limit_price=D("10"), time_in_force="gtc")
    assert order.status == "new" and order.broker_order_id


@pytest.mark.django_db
def test_no_threshold_means_no_approval(trader, settings):
    settings.APPROVAL_NOTIONAL = None
    assert big_buy(trader).status == "filled"


@pytest.mark.django_db(transaction=True)
def test_waits_then_a_second_operator_approves_and_it_fills(trader, operator, notices):
    order = big_buy(trader)
    assert order.status == "pending_approval" and not order.broker_order_id
    assert event_names(order) == ["submitted", "approval_requested"]
    assert order.events.last().detail["threshold"] == "1000"
    assert notices == [("approval_needed", None)]

    placed = services.approve_order(order=order, operator=operator, source="api").order

    assert placed.status == "filled" and placed.broker_order_id
    approved = placed.events.get(event="approved")
    assert approved.actor == operator
    assert notices[1:] == [("approval_decided", "approved"), ("fill", None)]


@pytest.mark.django_db
def test_the_threshold_of_the_account_then_the_user_then_the_desk(trader):
    account = default_broker_account(trader)
    assert approvals.threshold_for(trader, account) == D("1000")
    trader.approval_notional = D("50")
    assert approvals.threshold_for(trader, account) == D("50")
    account.approval_notional = D("5000000")
    assert approvals.threshold_for(trader, account) == D("5000000")
    account.save()
    trader.save()
    assert big_buy(trader).status == "filled"  # the account's own threshold lets it through


@pytest.mark.django_db
def test_a_waiting_order_counts_against_buying_power(trader, settings):
    settings.MAX_ORDER_QUANTITY = D("10000000")
    settings.MAX_POSITION_SIZE = D("1000000000")
    power = services.broker_for(default_broker_account(trader)).get_account().buying_power
    qty = str((power * D("0.6") / 10).quantize(D("1")))
    limit = {"type": "limit", "limit_price": D("10"), "time_in_force": "gtc"}
    assert big_buy(trader, qty=qty, **limit).status == "pending_approval"
    # Alone this one would fit; with the waiting one's cost held back it does not.
    with pytest.raises(services.OrderInvalid) as refused:
        big_buy(trader, qty=qty, **limit)
    assert refused.value.verdict.errors[0].code == "insufficient_buying_power"


@pytest.mark.django_db
def test_the_submitter_cannot_approve_their_own(operator):
    order = big_buy(operator)
    with pytest.raises(approvals.ApprovalForbidden) as refused:
        services.approve_order(order=order, operator=operator, source="api")
    assert refused.value.code == "four_eyes"
    with pytest.raises(approvals.ApprovalForbidden):
        approvals.reject_order(order, operator, "no", source="api")
    order.refresh_from_db()
    assert order.status == "pending_approval"


@pytest.mark.django_db
def test_staff_without_the_permission_cannot_decide(trader, make_user):
    order = big_buy(trader)
    staff = make_user("sam", is_staff=True)
    with pytest.raises(approvals.ApprovalForbidden) as refused:
        services.approve_order(order=order, operator=staff, source="api")
    assert refused.value.code == "permission_denied"


@pytest.mark.django_db(transaction=True)
def test_rejected_with_a_reason(trader, operator, notices):
    order = big_buy(trader)
    rejected = approvals.reject_order(order, operator, "  too big for today ", source="admin")
    assert rejected.status == "rejected"
    event = rejected.events.last()
    assert (event.event, event.actor, event.detail["reason"]) == (
        "approval_rejected",
        operator,
        "too big for today",
    )
    assert notices[-1] == ("approval_decided", "rejected")
    with pytest.raises(approvals.NotAwaitingApproval):
        services.approve_order(order=order, operator=operator, source="api")


@pytest.mark.django_db(transaction=True)
def test_expiry_by_the_task_and_when_looked_at(trader, operator, notices):
    first, second = big_buy(trader), big_buy(trader)
    old = timezone.now() - timedelta(seconds=601)
    Order.objects.filter(pk__in=[first.pk, second.pk]).update(created_at=old)

    with pytest.raises(approvals.NotAwaitingApproval):  # lazily, when an operator acts
        services.approve_order(order=first, operator=operator, source="api")
    assert tasks.expire_overdue_approvals() == 1  # the other one
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == "expired" and order.expired_at
        assert event_names(order)[-1] == "approval_expired"
    assert notices.count(("approval_decided", "expired")) == 2


@pytest.mark.django_db
def test_a_halt_set_meanwhile_rejects_it_at_approval(trader, operator):
    order = big_buy(trader)
    TradingHalt.objects.create(scope="desk", reason="Fed day", created_by=operator)

    with pytest.raises(services.OrderInvalid) as refused:
        services.approve_order(order=order, operator=operator, source="api")

    assert refused.value.verdict.errors[0].code == "trading_halted"
    order.refresh_from_db()
    assert order.status == "rejected" and not order.broker_order_id
    event = order.events.last()
    assert event.event == "approval_refused" and event.actor == operator
    assert event.detail["codes"] == ["trading_halted"]


@pytest.mark.django_db
def test_approval_does_not_count_the_order_twice(trader, operator, settings):
    settings.MAX_DAILY_TRADES = 1
    order = big_buy(trader)  # the day's only trade, already counted
    assert (
        services.approve_order(order=order, operator=operator, source="api").order.is_open is False
    )


@pytest.mark.django_db
def test_the_trader_cancels_while_it_waits(trader, operator):
    order = big_buy(trader)
    canceled = services.cancel_order(user=trader, order=order, source="api", actor=trader)
    assert canceled.status == "canceled" and canceled.canceled_at
    assert event_names(canceled)[-1] == "canceled"
    with pytest.raises(approvals.NotAwaitingApproval):
        services.approve_order(order=order, operator=operator, source="api")


@pytest.mark.django_db
def test_a_bracket_keeps_its_legs_until_approved(trader, operator):
    order = big_buy(
        trader,
        type="limit",
        limit_price=D("1"),
        time_in_force="gtc",
        qty="2000",
        order_class="bracket",
        take_profit=types.LegRequest(limit_price=D("2")),
        stop_loss=types.LegRequest(stop_price=D("0.5")),
    )
    assert order.status == "pending_approval"
    asked = approvals.order_input_of(order)
    assert asked.take_profit == types.LegRequest(limit_price=D("2"))
    assert asked.stop_loss == types.LegRequest(stop_price=D("0.5"))
    placed = services.approve_order(order=order, operator=operator, source="api").order
    assert placed.status == "new"
    at_broker = services.broker_for(placed.broker_account).get_order(placed.broker_order_id)
    assert sorted(leg.type for leg in at_broker.legs) == ["limit", "stop"]


# --- API ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_api_answers_pending_approval_and_operators_decide(api, trader, operator, other_trader):
    response = api.post(
        "/api/v1/orders/",
        {"symbol": "AAPL", "qty": "100", "side": "buy", "type": "market"},
        format="json",
    )
    assert response.status_code == 201
    order = response.json()["order"]
    assert order["status"] == "pending_approval"

    staff = client_for(operator)
    queue = staff.get("/api/v1/approvals/").json()["results"]
    assert [(row["id"], row["trader"]) for row in queue] == [(order["id"], "alice")]
    assert D(queue[0]["requested_notional"]) > 1000

    assert api.post(f"/api/v1/orders/{order['id']}/approve/").status_code == 403
    assert api.get("/api/v1/approvals/").status_code == 403
    assert client_for(other_trader).post(f"/api/v1/orders/{order['id']}/reject/").status_code == 403

    approved = staff.post(f"/api/v1/orders/{order['id']}/approve/")
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "filled"
    again = staff.post(f"/api/v1/orders/{order['id']}/approve/")
    assert (again.status_code, again.json()["code"]) == (409, "not_pending_approval")


@pytest.mark.django_db
def test_api_four_eyes_and_bad_input(operator, trader):
    own = big_buy(operator)
    staff = client_for(operator)
    refused = staff.post(f"/api/v1/orders/{own.pk}/approve/")
    assert (refused.status_code, refused.json()["code"]) == (403, "four_eyes")

    order = big_buy(trader)
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": ["a"]}):
        assert (
            staff.post(f"/api/v1/orders/{order.pk}/reject/", body, format="json").status_code == 400
        )
    assert staff.post("/api/v1/orders/999999/approve/").status_code == 404
    assert staff.post("/api/v1/orders/abc/approve/").status_code == 404
    assert (
        staff.post(
            f"/api/v1/orders/{order.pk}/reject/", "{", content_type="application/json"
        ).status_code
        == 400
    )
    order.refresh_from_db()
    assert order.status == "pending_approval" and event_names(order)[-1] == "approval_requested"

    rejected = staff.post(f"/api/v1/orders/{order.pk}/reject/", {"reason": "no"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"


@pytest.mark.django_db
def test_api_schema_documents_the_decisions(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    if schema.status_code != 200:
        pytest.skip(f"schema at another path ({schema.status_code})")
    paths = schema.json()["paths"] if schema["Content-Type"].startswith("application/json") else {}
    text = schema.content.decode()
    assert "/api/v1/orders/{order_id}/approve/" in (paths or text)
    assert "/api/v1/orders/{order_id}/reject/" in (paths or text)


@pytest.mark.django_db
def test_gateway_shows_a_waiting_order_as_accepted(trader):
    from gateway import wire

    assert wire.order_body(big_buy(trader))["status"] == "accepted"


# --- concurrency -------------------------------------------------------------------
def race(commands) -> list[str]:
    """Run the commands in threads released at once: what each came to."""
    barrier = threading.Barrier(len(commands))
    outcomes = []

    def run(command):
        try:
            barrier.wait(30)
            command()
            outcomes.append("done")
        except (approvals.NotAwaitingApproval, services.OrderNotModifiable) as refused:
            outcomes.append(type(refused).__name__)
        except Exception as failure:  # handed to the test's assertions
            outcomes.append(repr(failure))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(command,)) for command in commands]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.mark.services
@pytest.mark.parametrize("attempt", range(3))
@pytest.mark.django_db(transaction=True)
def test_approve_reject_cancel_expire_at_once_submit_once(attempt, trader, operator, make_user):
    require_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    second = make_user("otto", is_staff=True)
    second.user_permissions.add(Permission.objects.get(codename="approve_order"))
    order = big_buy(trader)

    outcomes = race(
        [
            lambda: services.approve_order(order=order, operator=operator, source="api"),
            lambda: services.approve_order(order=order, operator=second, source="api"),
            lambda: approvals.reject_order(order, second, "no", source="api"),
            lambda: services.cancel_order(user=trader, order=order, source="api", actor=trader),
            approvals.expire_overdue,
        ]
    )

    names = event_names(order)
    decided = [name for name in names if name in ("approved", "approval_rejected", "canceled")]
    assert len(decided) == 1, (names, outcomes)
    assert set(outcomes) <= {"done", "NotAwaitingApproval", "OrderNotModifiable"}, outcomes
    order.refresh_from_db()
    if decided == ["approved"]:
        assert order.status == "filled" and names.count("fill") <= 1
    else:
        assert order.status in ("rejected", "canceled") and not order.broker_order_id


# --- admin -------------------------------------------------------------------------
@pytest.mark.django_db
def test_admin_approves_and_rejects_through_the_services(trader, make_user):
    from django.test import Client

    admin = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    first, second = big_buy(trader), big_buy(trader)
    url = "/admin/orders/order/"
    assert client.get(url, {"status__exact": "pending_approval"}).status_code == 200

    client.post(url, {"action": "approve_orders", "_selected_action": [first.pk]})
    asked = client.post(url, {"action": "reject_orders", "_selected_action": [second.pk]})
    assert b'name="reason"' in asked.content  # the intermediate page asks for a reason
    second.refresh_from_db()
    assert second.status == "pending_approval"
    client.post(
        url,
        {
            "action": "reject_orders",
            "_selected_action": [second.pk],
            "reason": "not today",
            "apply": "Reject",
        },
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "filled" and first.events.get(event="approved").source == "admin"
    assert second.status == "rejected" and second.events.last().actor == admin
