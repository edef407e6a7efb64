"""Dates at the ends of the calendar are no 500, and the CSV export cannot smuggle formulas."""

from __future__ import annotations

import csv
import io

import pytest

from orders.models import Order
from orders.tests.pages_support import make_orders
from tradedesk.csv_safe import escape_cell

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, trader):
    client.force_login(trader)
    return client


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_history_page_and_csv_up_to_the_last_day_of_the_calendar(browser, trader):
    make_orders(trader, 2)
    page = browser.get("/orders/?before=9999-12-31")
    assert page.status_code == 200
    assert len(page.context["page"].orders) == 2
    assert len(csv_rows(browser.get("/orders/export.csv?before=9999-12-31"))) == 2
    assert csv_rows(browser.get("/orders/export.csv?after=9999-12-31")) == []


@pytest.mark.parametrize("url", ["/api/v1/orders/", "/api/v1/positions/history/"])
@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00%2B14:00"]
)  # past year 9999 / before year 1 once in UTC
@pytest.mark.parametrize("name", ["after", "before"])
def test_a_time_outside_the_calendar_in_utc_is_a_400(api, url, moment, name):
    response = api.get(f"{url}?{name}={moment}")
    assert response.status_code == 400, response.content
    assert name in response.json()


def test_a_time_inside_the_calendar_still_filters(api, trader):
    make_orders(trader, 1)
    assert api.get("/api/v1/orders/?after=9999-12-31T23:59:59%2B00:00").json()["results"] == []
    assert len(api.get("/api/v1/orders/?before=9999-12-31T23:59:59%2B01:00").json()["results"]) == 1


FORMULAS = ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("formula", FORMULAS)
def test_a_cell_a_spreadsheet_would_run_is_escaped_with_a_quote(formula):
    assert escape_cell(formula) == "'" + formula


@pytest.mark.parametrize("value", ["AAPL", "c-1", "", None, 5, "a=b"])
def test_other_cells_are_left_alone(value):
    assert escape_cell(value) == value


def test_the_csv_export_escapes_a_formula_in_a_client_order_id(browser, trader):
    order = make_orders(trader, 1)[0]
    Order.objects.filter(pk=order.pk).update(client_order_id=FORMULAS[0])
    (row,) = csv_rows(browser.get("/orders/export.csv"))
    assert row["client_order_id"] == "'" + FORMULAS[0]
    assert row["limit_price"] == "10.000000000"  # numbers stay numbers
