"""Alpaca's trading REST under /alpaca/v2/, over the desk's own services (thin: parse, call,
render). Authenticated by desk API keys in Alpaca's headers; every order command goes
through orders.services, the desk's one gate."""

from __future__ import annotations

import functools
import json
import re
from datetime import timedelta

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from orders import services as orders
from tradedesk.broker import calendar
from tradedesk.broker.errors import OrderRejected
from tradedesk.client_ip import client_address

from . import errors, selectors, services, wire
from .models import ApiKey

SOURCE = services.GATEWAY_SOURCE
MAX_LIMIT = 500
MAX_CALENDAR_DAYS = 3660


def alpaca_endpoint(*methods: str):
    """Authenticate the key (Alpaca's headers), count it against its rate, dispatch by
    method, and answer whatever the services raise the way Alpaca would."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                return errors.error(405, errors.MALFORMED, "method not allowed")
            api_key = None
            try:
                api_key = services.authenticate_key(
                    key_id=request.headers.get("APCA-API-KEY-ID", ""),
                    secret=request.headers.get("APCA-API-SECRET-KEY", ""),
                    address=client_address(request),
                )
                services.count_request(api_key)
                return view(request, api_key, *args, **kwargs)
            except Exception as exc:
                rate = services.key_rate(api_key) if api_key is not None else None
                response = errors.for_exception(exc, rate_limit_count=rate and rate.count)
                if response is None:
                    raise
                return response

        return wrapper

    return decorate


def _json_body(request):
    try:
        return json.loads(request.body or b"null")
    except (ValueError, RecursionError):
        raise wire.BadRequest("request body format is invalid") from None


def _query(request, name: str, default: str = "") -> str:
    return request.GET.get(name, default).strip()


def _true(request, name: str) -> bool:
    return _query(request, name).lower() == "true"


# --- account, clock, calendar, assets ---------------------------------------------------
@alpaca_endpoint("GET")
def account(request, api_key: ApiKey):
    info = services.broker_of(api_key).get_account()
    broker_account = api_key.broker_account
    return JsonResponse(
        wire.account(
            info, number_=f"TD{broker_account.pk:08d}", created_at=broker_account.created_at
        )
    )


@alpaca_endpoint("GET")
def clock(request, api_key: ApiKey):
    return JsonResponse(wire.clock(services.broker_of(api_key).get_clock(), calendar.market_zone()))


@alpaca_endpoint("GET")
def calendar_days(request, api_key: ApiKey):
    today = timezone.now().astimezone(calendar.market_zone()).date()
    start_text, end_text = _query(request, "start"), _query(request, "end")
    start = wire.parse_date(start_text, "start") if start_text else today
    try:
        end = wire.parse_date(end_text, "end") if end_text else start + timedelta(days=365)
    except OverflowError:  # a start within a year of the calendar's last day
        raise wire.BadRequest("invalid date range") from None
    if end < start or (end - start).days > MAX_CALENDAR_DAYS:
        raise wire.BadRequest("invalid date range")
    return JsonResponse(services.market_days(start, end), safe=False)


@alpaca_endpoint("GET")
def assets(request, api_key: ApiKey):
    listed = services.broker_of(api_key).list_assets()
    status = _query(request, "status")
    return JsonResponse(
        [wire.asset(a) for a in listed if not status or a.status == status], safe=False
    )


@alpaca_endpoint("GET")
def asset(request, api_key: ApiKey, symbol: str):
    try:
        found = services.asset_by_symbol_or_id(api_key, symbol)
    except OrderRejected:
        return errors.error(404, errors.NOT_FOUND, "asset not found")
    return JsonResponse(wire.asset(found))


# --- orders -----------------------------------------------------------------------------
def _order_json(order, *, nested: bool = True) -> dict:
    return wire.order_body(order, legs=list(order.legs.all()) if nested else None)


@alpaca_endpoint("GET", "POST", "DELETE")
def orders_collection(request, api_key: ApiKey):
    if request.method == "POST":
        order_input = wire.order_request(_json_body(request))
        placement = services.place(api_key, order_input)
        return JsonResponse(_order_json(placement.order))
    if request.method == "DELETE":
        items = []
        outcomes = orders.cancel_all_orders(
            user=api_key.user,
            broker_account=api_key.broker_account,
            source=SOURCE,
            actor=api_key.user,
        )
        for outcome in outcomes:
            services.refresh_legs(api_key, outcome.order)
            item = {"id": wire.order_id(outcome.order), "status": 200}
            if outcome.error is not None:
                item |= errors.multi_status_item(outcome.error)
            items.append(item)
        return JsonResponse(items, safe=False, status=207)
    return JsonResponse(_list_orders(request, api_key), safe=False)


def _list_orders(request, api_key: ApiKey) -> list[dict]:
    status = _query(request, "status", "open")
    if status not in ("open", "closed", "all"):
        raise wire.BadRequest("invalid status")
    direction = _query(request, "direction", "desc")
    if direction not in ("asc", "desc"):
        raise wire.BadRequest("invalid direction")
    limit_text = _query(request, "limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", limit_text) or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise wire.BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    found = selectors.gateway_orders(
        api_key,
        status=status,
        after=wire.parse_time(_query(request, "after"), "after")
        if _query(request, "after")
        else None,
        until=wire.parse_time(_query(request, "until"), "until")
        if _query(request, "until")
        else None,
        symbols=[s.strip().upper() for s in _query(request, "symbols").split(",") if s.strip()],
        side=_query(request, "side"),
        ascending=direction == "asc",
        limit=int(limit_text),
    )
    nested = _true(request, "nested")
    return [_order_json(order, nested=nested) for order in found]


@alpaca_endpoint("GET")
def order_by_client_id(request, api_key: ApiKey):
    client_order_id = _query(request, "client_order_id")
    if not client_order_id:
        raise wire.BadRequest("client_order_id is missing")
    order = selectors.gateway_order_by_client_id(api_key, client_order_id)
    if order is None:
        return errors.order_not_found()
    return JsonResponse(_order_json(order))


@alpaca_endpoint("GET", "PATCH", "DELETE")
def order_detail(request, api_key: ApiKey, order_id: str):
    order = selectors.gateway_order(api_key, order_id)
    if order is None:
        return errors.order_not_found()
    if request.method == "GET":
        return JsonResponse(_order_json(order, nested=_true(request, "nested")))
    if request.method == "DELETE":
        orders.cancel_order(user=api_key.user, order=order, source=SOURCE, actor=api_key.user)
        services.refresh_legs(api_key, order)
        return HttpResponse(status=204)
    changes = wire.replace_request(_json_body(request))
    replacement = orders.replace_order(
        user=api_key.user,
        order=order,
        changes=changes,
        source=SOURCE,
        actor=api_key.user,
        second_factor_verified=api_key.second_factor_verified,
    )
    services.refresh_legs(api_key, order)
    return JsonResponse(_order_json(replacement.order))


# --- positions --------------------------------------------------------------------------
@alpaca_endpoint("GET", "DELETE")
def positions_collection(request, api_key: ApiKey):
    if request.method == "GET":
        return JsonResponse(services.positions(api_key), safe=False)
    items = []
    for outcome in orders.close_all_positions(
        user=api_key.user,
        broker_account=api_key.broker_account,
        source=SOURCE,
        cancel_orders=_true(request, "cancel_orders"),
        second_factor_verified=api_key.second_factor_verified,
    ):
        item = {"symbol": outcome.symbol, "status": 200}
        if outcome.error is not None:
            item |= errors.multi_status_item(outcome.error)
        else:
            item["body"] = _order_json(outcome.placement.order)
        items.append(item)
    return JsonResponse(items, safe=False, status=207)


@alpaca_endpoint("GET", "DELETE")
def position_detail(request, api_key: ApiKey, symbol: str):
    symbol = symbol.upper()
    if request.method == "GET":
        held = [p for p in services.positions(api_key) if p["symbol"] == symbol]
        if not held:
            return errors.error(404, errors.NOT_FOUND, "position does not exist")
        return JsonResponse(held[0])
    placement = services.close(
        api_key,
        symbol,
        qty=wire.decimal(_query(request, "qty") or None, "qty"),
        percentage=wire.decimal(_query(request, "percentage") or None, "percentage"),
    )
    return JsonResponse(_order_json(placement.order))


def not_found(request, path: str = ""):
    return errors.error(404, errors.NOT_FOUND, "endpoint not found")
