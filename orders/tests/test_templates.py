"""Order templates, services: saving checks only that a template is well formed; placing from
one goes through the gate (place_order) like any order, each time."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.selectors import default_broker_account
from accounts.services import broker_for
from orders import services, templates
from orders.models import Order, OrderTemplate, TradingHalt
from tradedesk.broker import types
from tradedesk.ratelimit import RateLimitExceeded

pytestmark = pytest.mark.django_db

D = Decimal
MARKET_BUY = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"}


def save(owner, name="AAPL buy", **terms):
    return templates.save_template(owner=owner, name=name, **(MARKET_BUY | terms))


def test_saving_asks_neither_the_gate_nor_the_broker(trader, monkeypatch, settings):
    """A million shares, on a halted desk, with the broker unreachable: well formed, so kept."""
    TradingHalt.objects.create(scope=TradingHalt.SCOPE_DESK, mode="halted", reason="drill")
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"validate": "1/day"}

    def unreachable(_account):
        raise AssertionError("saving a template must not reach the broker")

    monkeypatch.setattr(templates.services, "broker_for", unreachable)
    template = save(trader, qty=D("1000000"))

    assert OrderTemplate.objects.get() == template
    assert template.qty == D("1000000") and not Order.objects.exists()


def test_a_template_over_buying_power_is_refused_when_placed(trader):
    buying_power = broker_for(default_broker_account(trader)).get_account().buying_power
    template = save(trader, notional=buying_power * 2)

    with pytest.raises(services.OrderInvalid) as refused:
        templates.place_from_template(template, source="api")

    assert [e.code for e in refused.value.verdict.errors] == ["insufficient_buying_power"]
    assert not Order.objects.exists()


def test_a_halt_refuses_a_template_that_placed_before(trader):
    template = save(trader, qty=D("1"))
    assert templates.place_from_template(template, source="api").order.status == "filled"
    TradingHalt.objects.create(scope=TradingHalt.SCOPE_USER, user=trader, mode="halted", reason="x")

    with pytest.raises(services.OrderInvalid) as refused:
        templates.place_from_template(template, source="api")

    assert [e.code for e in refused.value.verdict.errors] == ["trading_halted"]
    assert Order.objects.count() == 1


def test_a_template_over_the_approval_threshold_waits_for_approval(trader, settings):
    settings.APPROVAL_NOTIONAL = D("1000")
    template = save(trader, qty=D("100"))

    order = templates.place_from_template(template, source="page").order

    assert order.status == "pending_approval" and not order.broker_order_id
    assert order.placed_via == "page"
    assert list(order.events.values_list("event", flat=True)) == [
        "submitted",
        "approval_requested",
    ]


def test_placing_counts_against_the_place_rate_with_the_other_doors(trader, settings):
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"place": "2/min"}
    template = save(trader, qty=D("1"))
    templates.place_from_template(template, source="api")
    services.place_order(
        user=trader,
        broker_account=default_broker_account(trader),
        order_input=template.order_input(),
    )

    with pytest.raises(RateLimitExceeded):
        templates.place_from_template(template, source="api")
    assert Order.objects.count() == 2


def test_warnings_are_confirmed_as_on_the_ticket(trader):
    template = save(trader, type="limit", limit_price=D("1"), qty=D("1"), time_in_force="gtc")

    with pytest.raises(services.WarningsUnconfirmed) as unconfirmed:
        templates.place_from_template(template, source="page", confirm_warnings=False)
    assert unconfirmed.value.verdict.warnings and not Order.objects.exists()

    placed = templates.place_from_template(template, source="page", confirm_warnings=True)
    assert placed.order.status == "new" and placed.verdict.warnings


def test_overrides_replace_the_quantity_and_name_the_placement(trader):
    template = save(trader, notional=D("50"))

    first = templates.place_from_template(template, qty=D("2"), client_order_id="t-1", source="api")
    again = templates.place_from_template(template, qty=D("2"), client_order_id="t-1", source="api")

    assert (first.order.qty, first.order.notional) == (D("2"), None)
    assert again.order.pk == first.order.pk and not again.created
    with pytest.raises(services.IdempotencyConflict):
        templates.place_from_template(template, qty=D("3"), client_order_id="t-1", source="api")


def test_a_template_without_a_quantity_is_kept_and_the_gate_asks_for_one(trader):
    template = save(trader)

    with pytest.raises(services.OrderInvalid) as refused:
        templates.place_from_template(template, source="api")
    assert refused.value.verdict.errors[0].field in ("qty", None)
    assert templates.place_from_template(template, qty=D("1"), source="api").order.qty == 1


def test_a_template_keeps_the_whole_ticket_and_its_account(trader):
    from accounts.services import link_broker_account

    second = link_broker_account(user=trader, provider="sim", label="second", paper=True)
    template = templates.save_template(
        owner=trader,
        name="bracket",
        broker_account=second,
        symbol="MSFT",
        side="buy",
        type="limit",
        time_in_force="gtc",
        qty=D("2"),
        limit_price=D("10"),
        extended_hours=False,
        order_class="bracket",
        take_profit=types.LegRequest(limit_price=D("20")),
        stop_loss=types.LegRequest(stop_price=D("5"), limit_price=D("4.5")),
    )
    template.refresh_from_db()
    terms = template.order_input()

    assert (terms.symbol, terms.qty, terms.limit_price, terms.order_class) == (
        "MSFT",
        D("2"),
        D("10"),
        "bracket",
    )
    assert terms.take_profit == types.LegRequest(limit_price=D("20"))
    assert terms.stop_loss == types.LegRequest(stop_price=D("5"), limit_price=D("4.5"))
    assert terms.client_order_id == ""
    order = templates.place_from_template(template, source="api").order
    assert order.broker_account == second and order.order_class == "bracket"


@pytest.mark.parametrize(
    ("terms", "field", "code"),
    [
        ({"side": "hold"}, "side", "invalid_choice"),
        ({"type": "moon"}, "type", "invalid_choice"),
        ({"time_in_force": "forever"}, "time_in_force", "invalid_choice"),
        ({"order_class": "mleg"}, "order_class", "invalid_choice"),
        ({"symbol": "aapl; drop"}, "symbol", "invalid_symbol"),
        ({"symbol": "A" * 17}, "symbol", "max_length"),
        ({"qty": D("0")}, "qty", "not_positive"),
        ({"notional": D("-5")}, "notional", "not_positive"),
        ({"limit_price": D("-1")}, "limit_price", "not_positive"),
        ({"qty": D("1e20")}, "qty", "max_whole_digits"),
        ({"qty": D("0.0000000001")}, "qty", "max_decimal_places"),
    ],
)
def test_a_template_that_is_not_well_formed_is_not_saved(trader, terms, field, code):
    with pytest.raises(templates.TemplateInvalid) as invalid:
        save(trader, **terms)

    issues = invalid.value.as_issues()
    assert {i["field"] for i in issues} == {field}
    assert code in {i["code"] for i in issues}
    assert not OrderTemplate.objects.exists()


def test_names_are_trimmed_bounded_and_unique_per_owner_ignoring_case(trader, other_trader):
    assert save(trader, name="  Morning buy  ").name == "Morning buy"
    assert save(other_trader, name="morning BUY").owner == other_trader  # another owner's

    for name in ("MORNING buy", " morning buy ", "", "x" * 81):
        with pytest.raises(templates.TemplateInvalid) as invalid:
            save(trader, name=name)
        assert [i["field"] for i in invalid.value.as_issues()] == ["name"]
    assert trader.order_templates.count() == 1


def test_another_users_broker_account_is_refused(trader, other_trader):
    with pytest.raises(templates.TemplateInvalid) as invalid:
        save(trader, broker_account=default_broker_account(other_trader))

    assert invalid.value.as_issues()[0]["field"] == "broker_account"
    assert not OrderTemplate.objects.exists()


def test_update_renames_and_changes_only_what_is_given(trader):
    template = save(trader, type="limit", limit_price=D("10"), qty=D("1"))
    save(trader, name="taken")

    updated = templates.update_template(template, name="renamed", qty=D("3"))
    updated.refresh_from_db()
    assert (updated.name, updated.qty, updated.limit_price) == ("renamed", 3, 10)

    with pytest.raises(templates.TemplateInvalid):
        templates.update_template(updated, name="TAKEN", qty=D("-1"))
    updated.refresh_from_db()
    assert (updated.name, updated.qty) == ("renamed", 3)
    with pytest.raises(TypeError):
        templates.update_template(updated, owner=trader)


def test_delete(trader):
    templates.delete_template(save(trader))
    assert not OrderTemplate.objects.exists()


def test_a_name_taken_between_the_check_and_the_insert_is_the_same_error(trader, monkeypatch):
    """Two saves of one name at once: the database's constraint decides, and the loser gets
    the name's error, not a 500."""
    save(trader, name="Race")
    monkeypatch.setattr(OrderTemplate, "full_clean", lambda self: None)  # both passed the check

    with pytest.raises(templates.TemplateInvalid) as invalid:
        save(trader, name="race")

    assert [(i["field"], i["code"]) for i in invalid.value.as_issues()] == [
        ("name", "duplicate_name")
    ]
    assert trader.order_templates.count() == 1
