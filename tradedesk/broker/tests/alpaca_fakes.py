"""Loopback fakes of Alpaca for the adapter's tests (test helpers only, never imported by the desk).

- FakeAlpacaREST: a threaded HTTP server speaking Alpaca's trading REST and the stock
  market-data REST, with an in-memory order book following Alpaca's semantics (fills are
  logged as FILL account activities, charged fees as FEE/PTC non-trade activities; cancel-all
  and close-all answer 207 multi-status),
  scripted failures and a record of every request.
- FakeMarketDataStream: Alpaca's msgpack market-data WebSocket.
- FakeTradingStream: Alpaca's JSON trade_updates WebSocket, any event type.

alpaca-py does real HTTP and WebSocket I/O against them, so the wire format is exercised.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

FIXTURES = Path(__file__).parent / "fixtures" / "alpaca"
KEY_ID = "PKTESTKEY0000000001A"  # Alpaca's formats: 20 and 40 letters and digits
SECRET = "testSecretKey000000000000000000000000001"

# Alpaca's "closed" query covers orders that will never change again.
CLOSED_STATUSES = {"filled", "canceled", "expired", "replaced", "rejected"}
# Account fields Alpaca removed from its schema on 2026-07-06.
REMOVED_ACCOUNT_FIELDS = (
    "daytrade_count",
    "daytrading_buying_power",
    "bod_dtbp",
    "last_daytrade_count",
    "pattern_day_trader",
)
# Orders the fake creates get submission times from here on, 1 ms apart.
EPOCH_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- time on Alpaca's wire: RFC 3339 with up to nanoseconds ------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?$"
)


def parse_ns(text: str) -> int:
    """Nanoseconds since the epoch from an RFC 3339 time (Python's parser stops at µs)."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"bad time {text!r}")
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    seconds = calendar.timegm(tuple(map(int, (year, month, day, hour, minute, second))))
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        seconds -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    nanos = int((fraction or "0").ljust(9, "0"))
    return seconds * 10**9 + nanos


def format_ns(ns: int) -> str:
    seconds, nanos = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def wire_number(value: Any) -> str | None:
    """Alpaca answers numbers as decimal strings ("2", not "2.0")."""
    if value is None:
        return None
    return format(Decimal(str(value)).normalize(), "f")


# --- the REST fake -----------------------------------------------------------

Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (or None), extra headers


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class Scripted:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class ApiError(Exception):
    """An Alpaca error answer inside the fake: status and Alpaca's {code, message}."""

    def __init__(self, status: int, message: str, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message} if code else {"message": message}


class ClosePositionRefused(ApiError):
    """Alpaca's 403 for closing a position whose shares open orders hold (its body as the 207
    item carries it)."""

    def __init__(self, position: dict):
        qty, available = position["qty"], position["qty_available"]
        message = f"insufficient qty available for order (requested: {qty}, available: {available})"
        super().__init__(403, message, 40310000)
        self.body = {
            **self.body,
            "available": available,
            "existing_qty": qty,
            "held_for_orders": wire_number(Decimal(qty) - Decimal(available)),
            "symbol": position["symbol"],
        }


def _not_found(order_id: str) -> ApiError:
    return ApiError(404, f"order not found for {order_id}", 40410000)


class FakeAlpacaREST:
    """Alpaca's trading and stock-data REST on 127.0.0.1, with an in-memory order book."""

    def __init__(self, key_id: str = KEY_ID, secret: str = SECRET):
        self.key_id, self.secret = key_id, secret
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self._script: deque[Scripted] = deque()
        self._release = threading.Event()
        account = load_fixture("account.json")
        for removed in REMOVED_ACCOUNT_FIELDS:
            account.pop(removed, None)
        self.account = account
        self.clock = load_fixture("clock.json")
        self.calendar = [load_fixture("calendar_day.json")]
        apple = load_fixture("asset.json")
        self.assets = {
            apple["symbol"]: apple,
            "MSFT": {**apple, "id": str(uuid.uuid4()), "symbol": "MSFT", "name": "Microsoft"},
        }
        self.positions = load_fixture("positions_list.json")
        self.quotes = load_fixture("stock_latest_quotes.json")["quotes"]
        self.trades = load_fixture("stock_latest_trades.json")["trades"]
        self.bars: dict[str, list[dict]] = {}
        self.bars_page_size = 2  # small, so bar requests page through next_page_token
        self.orders: dict[str, dict] = {}  # in insertion order
        self.activities: list[dict] = []  # FILL activities, oldest first
        self.fee_activities: list[dict] = []  # FEE and PTC non-trade activities, oldest first
        # Orders DELETE /v2/orders fails to cancel: order id -> (status, body) of its 207 item.
        self.cancel_refusals: dict[str, tuple[int, dict]] = {}
        self._submitted_ns: dict[str, int] = {}
        self._parent: dict[str, str] = {}  # leg id -> parent id
        self._next_ns = EPOCH_NS
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        # A short poll interval: shutdown() waits for it, at every test's teardown.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAlpacaREST:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # let hung requests finish
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- scripting and inspection ------------------------------------------
    def fail_next(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` requests with this error, whatever they ask."""
        with self.lock:
            self._script.extend(Scripted(status, body, headers or {}) for _ in range(times))

    def hang_next(self, times: int = 1) -> None:
        """Never answer the next `times` requests (until the fake stops)."""
        with self.lock:
            self._script.extend(Scripted(hang=True) for _ in range(times))

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    # --- order book ---------------------------------------------------------
    def add_order(
        self, *, submitted_ns: int | None = None, status: str = "new", **fields: Any
    ) -> dict:
        """Seed an order as if it had been placed, optionally at an exact nanosecond."""
        body = {
            "symbol": "AAPL",
            "qty": 1,
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            **fields,
        }
        with self.lock:
            order = self._create(body, submitted_ns=submitted_ns)
            order["status"] = status
            return self._view(order, nested=True)

    def put_order(self, order: dict, submitted_ns: int = 0) -> None:
        """Seed an order exactly as given (a fixture), legs included."""
        with self.lock:
            self.orders[order["id"]] = order
            self._submitted_ns[order["id"]] = submitted_ns

    def fill(self, order_id: str, price: str) -> dict:
        """Fill what is left of an order at `price`; returns it as Alpaca would."""
        with self.lock:
            order = self.orders[order_id]
            left = Decimal(order["qty"]) - Decimal(order["filled_qty"])
            return self.execute(order_id, wire_number(left), price)

    def execute(self, order_id: str, qty: str, price: str) -> dict:
        """One execution of `qty` at `price` (a partial fill unless it completes the order),
        logged as a FILL activity; returns the order as Alpaca would."""
        with self.lock:
            order = self.orders[order_id]
            now = format_ns(self._tick())
            before = Decimal(order["filled_qty"])
            filled = before + Decimal(qty)
            average = (
                before * Decimal(order["filled_avg_price"] or 0) + Decimal(qty) * Decimal(price)
            ) / filled
            done = filled >= Decimal(order["qty"])
            order.update(
                status="filled" if done else "partially_filled",
                filled_qty=wire_number(filled),
                filled_avg_price=wire_number(average),
                updated_at=now,
            )
            if done:
                order["filled_at"] = now
            self.activities.append(
                {
                    "activity_type": "FILL",
                    # Alpaca's "<yyyymmddhhmmssmmm>::<uuid>"
                    "id": f"{re.sub(r'[^0-9]', '', now)[:17]}::{uuid.uuid4()}",
                    "transaction_time": now,
                    "type": "fill" if done else "partial_fill",
                    "price": wire_number(price),
                    "qty": wire_number(qty),
                    "side": order["side"],
                    "symbol": order["symbol"],
                    "leaves_qty": wire_number(Decimal(order["qty"]) - filled),
                    "order_id": order_id,
                    "cum_qty": wire_number(filled),
                    "order_status": order["status"],
                }
            )
            return self._view(order, nested=True)

    def charge_fee(
        self,
        *,
        date: str,
        amount: str,
        activity_type: str = "FEE",
        sub_type: str | None = "REG",
        **fields: Any,
    ) -> dict:
        """Log a fee charged for the trading day `date` (YYYY-MM-DD), shaped like
        account_activity_fee.json; `fields` adds or overrides (symbol, order_id, status)."""
        with self.lock:
            activity = {
                **load_fixture("account_activity_fee.json"),
                "activity_type": activity_type,
                "id": f"{date.replace('-', '')}{len(self.fee_activities):09d}::{uuid.uuid4()}",
                "date": date,
                "net_amount": wire_number(-Decimal(amount)),
                "activity_sub_type": sub_type,
                "description": f"{sub_type or activity_type} fee",
                **fields,
            }
            if sub_type is None:
                activity.pop("activity_sub_type")
            self.fee_activities.append(activity)
            return activity

    def change(self, order_id: str, **fields: Any) -> dict:
        """Change an order's fields as Alpaca would (a newer updated_at); returns its view."""
        with self.lock:
            order = self.orders[order_id]
            order.update(fields, updated_at=format_ns(self._tick()))
            return self._view(order, nested=True)

    def replace(self, order_id: str, **body: Any) -> tuple[dict, dict]:
        """Replace an order as PATCH /v2/orders/{id} does: (the old order, the new one)."""
        with self.lock:
            new = self._replace(self._order(order_id), body)
            return self._view(self.orders[order_id], nested=True), self._view(new, nested=True)

    def _tick(self) -> int:
        self._next_ns += 1_000_000
        return self._next_ns

    def _create(self, body: dict, *, submitted_ns: int | None = None, **extra: Any) -> dict:
        symbol = body.get("symbol")
        asset = self.assets.get(symbol or "")
        if asset is None:
            raise ApiError(422, f"asset {symbol!r} not found", 40010001)
        if (body.get("qty") is None) == (body.get("notional") is None):
            raise ApiError(422, "qty or notional is required", 40010001)
        client_order_id = body.get("client_order_id") or str(uuid.uuid4())
        if any(o["client_order_id"] == client_order_id for o in self.orders.values()):
            raise ApiError(422, "client_order_id must be unique", 40010001)
        ns = submitted_ns if submitted_ns is not None else self._tick()
        stamp = format_ns(ns)
        order_class = body.get("order_class") or ""
        order = {
            "id": str(uuid.uuid4()),
            "client_order_id": client_order_id,
            "created_at": stamp,
            "updated_at": stamp,
            "submitted_at": stamp,
            "filled_at": None,
            "expired_at": None,
            "canceled_at": None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": asset["id"],
            "symbol": symbol,
            "asset_class": asset["class"],
            "notional": wire_number(body.get("notional")),
            "qty": wire_number(body.get("qty")),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": "" if order_class == "simple" else order_class,
            "order_type": body["type"],
            "type": body["type"],
            "side": body["side"],
            "time_in_force": body["time_in_force"],
            "limit_price": wire_number(body.get("limit_price")),
            "stop_price": wire_number(body.get("stop_price")),
            "status": "accepted",
            "extended_hours": bool(body.get("extended_hours")),
            "legs": None,
            "trail_percent": wire_number(body.get("trail_percent")),
            "trail_price": wire_number(body.get("trail_price")),
            # Alpaca sets the high-water mark to the market price on a trailing stop.
            "hwm": self.trades.get(symbol, {}).get("p") and wire_number(self.trades[symbol]["p"])
            if body["type"] == "trailing_stop"
            else None,
            **extra,
        }
        self.orders[order["id"]] = order
        self._submitted_ns[order["id"]] = ns
        self._create_legs(order, body)
        return order

    def _create_legs(self, parent: dict, body: dict) -> None:
        exit_side = "sell" if parent["side"] == "buy" else "buy"
        legs = []
        if body.get("take_profit"):
            legs.append({"type": "limit", "limit_price": body["take_profit"]["limit_price"]})
        if body.get("stop_loss"):
            stop = body["stop_loss"]
            kind = "stop_limit" if stop.get("limit_price") is not None else "stop"
            legs.append({"type": kind, **stop})
        for leg in legs:
            leg_body = {
                "symbol": parent["symbol"],
                "qty": parent["qty"],
                "side": exit_side,
                "time_in_force": parent["time_in_force"],
                "order_class": parent["order_class"],
                **leg,
            }
            child = self._create(leg_body, submitted_ns=self._submitted_ns[parent["id"]])
            child["status"] = "held"
            self._parent[child["id"]] = parent["id"]

    def _legs_of(self, order_id: str) -> list[dict]:
        return [self.orders[c] for c, p in self._parent.items() if p == order_id]

    def _view(self, order: dict, *, nested: bool) -> dict:
        view = dict(order)
        legs = self._legs_of(order["id"]) if nested else []
        # An order seeded from a fixture keeps the legs it came with.
        own_legs = order.get("legs") if nested else None
        view["legs"] = [self._view(leg, nested=False) for leg in legs] or own_legs
        return view

    def _order(self, order_id: str) -> dict:
        order = self.orders.get(order_id)
        if order is None:
            raise _not_found(order_id)
        return order

    # --- routing ------------------------------------------------------------
    def dispatch(self, method: str, target: str, body: Any, headers: dict[str, str]) -> Answer:
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests.append(RecordedRequest(method, path, query, body, headers))
            scripted = self._script.popleft() if self._script else None
        if scripted is not None and scripted.hang:
            self._release.wait(timeout=30)
            return 504, {"message": "hung request released"}, {}
        if scripted is not None:
            return scripted.status, scripted.body, scripted.headers
        try:
            self._check_auth(path, headers)
            with self.lock:
                return self._route(method, path, query, body)
        except ApiError as exc:
            return exc.status, exc.body, {}

    def _check_auth(self, path: str, headers: dict[str, str]) -> None:
        key, secret = headers.get("apca-api-key-id"), headers.get("apca-api-secret-key")
        if key == self.key_id and secret == self.secret:
            return
        if path.startswith("/v2/stocks/"):
            raise ApiError(403, "forbidden")  # the data host answers without a code
        raise ApiError(401, "request is not authorized", 40110000)

    def _route(self, method: str, path: str, q: dict[str, str], body: Any) -> Answer:
        if method == "GET" and path == "/v2/account":
            return ok(self.account)
        if method == "GET" and path == "/v2/clock":
            return ok(self.clock)
        if method == "GET" and path == "/v2/calendar":
            start, end = q.get("start", "0000"), q.get("end", "9999")
            return ok([d for d in self.calendar if start <= d["date"] <= end])
        if method == "GET" and path == "/v2/assets":
            return ok(list(self.assets.values()))
        if method == "GET" and path.startswith("/v2/assets/"):
            asset = self.assets.get(path.removeprefix("/v2/assets/"))
            if asset is None:
                raise ApiError(404, "asset not found", 40410000)
            return ok(asset)
        if method == "GET" and path == "/v2/positions":
            return ok(self.positions)
        if method == "DELETE" and path == "/v2/positions":
            if _truthy(q.get("cancel_orders")):
                self._cancel_all()
            return 207, [self._close_item(p) for p in list(self.positions)], {}
        if method == "DELETE" and path.startswith("/v2/positions/"):
            return ok(self._close(path.removeprefix("/v2/positions/")))
        if method == "GET" and path == "/v2/account/activities/FILL":
            return ok(self._activities(q, self.activities, "transaction_time"))
        if method == "GET" and path == "/v2/account/activities":
            types = set(q.get("activity_types", "").split(","))
            fees = [a for a in self.fee_activities if a["activity_type"] in types]
            return ok(self._activities(q, fees, "date"))
        if method == "DELETE" and path == "/v2/orders":
            return 207, self._cancel_all(), {}
        if path == "/v2/orders":
            if method == "POST":
                return ok(self._view(self._create(body), nested=True))
            if method == "GET":
                return ok(self._list_orders(q))
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            cid = q.get("client_order_id")
            for order in self.orders.values():
                if order["client_order_id"] == cid:
                    return ok(self._view(order, nested=True))
            raise ApiError(404, "order not found", 40410000)
        if path.startswith("/v2/orders/"):
            order = self._order(path.removeprefix("/v2/orders/"))
            if method == "GET":
                return ok(self._view(order, nested=_truthy(q.get("nested"))))
            if method == "DELETE":
                self._cancel(order)
                return 204, None, {}
            if method == "PATCH":
                return ok(self._view(self._replace(order, body), nested=True))
        if method == "GET" and path in ("/v2/stocks/quotes/latest", "/v2/stocks/trades/latest"):
            book, key = (self.quotes, "quotes") if "quotes" in path else (self.trades, "trades")
            symbols = q.get("symbols", "").split(",")
            return ok({key: {s: book[s] for s in symbols if s in book}})
        if method == "GET" and path == "/v2/stocks/bars":
            return ok(self._bars(q))
        raise ApiError(404, f"no route {method} {path}")

    def _list_orders(self, q: dict[str, str]) -> list[dict]:
        status = q.get("status", "open")
        limit = min(int(q.get("limit", 50)), 500)
        after = parse_ns(q["after"]) if "after" in q else None
        until = parse_ns(q["until"]) if "until" in q else None
        nested = _truthy(q.get("nested"))
        symbols = set(q["symbols"].split(",")) if q.get("symbols") else None
        picked = []
        for seq, order in enumerate(self.orders.values()):
            ns = self._submitted_ns[order["id"]]
            if nested and order["id"] in self._parent:
                continue  # legs come inside their parent
            if status == "open" and order["status"] in CLOSED_STATUSES:
                continue
            if status == "closed" and order["status"] not in CLOSED_STATUSES:
                continue
            # Alpaca compares at full (nanosecond) precision, both bounds exclusive.
            if (after is not None and ns <= after) or (until is not None and ns >= until):
                continue
            if symbols and order["symbol"] not in symbols:
                continue
            if q.get("side") and order["side"] != q["side"]:
                continue
            picked.append((ns, seq, order))
        picked.sort(key=lambda item: item[:2], reverse=q.get("direction", "desc") == "desc")
        return [self._view(order, nested=nested) for _, _, order in picked[:limit]]

    def _cancel(self, order: dict) -> None:
        if order["status"] in CLOSED_STATUSES:
            raise ApiError(422, f'order is already in "{order["status"]}" state', 42210000)
        now = format_ns(self._tick())
        # Alpaca acknowledges with 204 and cancels asynchronously; the fake cancels at once.
        for target in (order, *self._legs_of(order["id"])):
            target.update(status="canceled", canceled_at=now, updated_at=now)

    def _cancel_all(self) -> list[dict]:
        """DELETE /v2/orders: every open order (legs come with their parent), one 207 item each."""
        items = []
        for order in list(self.orders.values()):
            if order["status"] in CLOSED_STATUSES or order["id"] in self._parent:
                continue
            refusal = self.cancel_refusals.get(order["id"])
            if refusal is not None:
                status, body = refusal
                items.append({"id": order["id"], "status": status, "body": body})
                continue
            self._cancel(order)
            items.append({"id": order["id"], "status": 200})
        return items

    def _close(self, symbol: str) -> dict:
        """DELETE /v2/positions/{symbol}: a market order for the whole position."""
        position = next((p for p in self.positions if p["symbol"] == symbol), None)
        if position is None:
            raise ApiError(404, "position not found", 40410000)
        qty, available = Decimal(position["qty"]), Decimal(position["qty_available"])
        if available < qty:
            raise ClosePositionRefused(position)
        side = "sell" if position["side"] == "long" else "buy"
        body = {"symbol": symbol, "qty": position["qty"], "side": side, "type": "market"}
        return self._view(self._create({**body, "time_in_force": "day"}), nested=True)

    def _close_item(self, position: dict) -> dict:
        """One item of DELETE /v2/positions's 207 body."""
        symbol = position["symbol"]
        try:
            return {"symbol": symbol, "status": 200, "body": self._close(symbol)}
        except ClosePositionRefused as refused:
            return {"symbol": symbol, "status": 403, "body": refused.body}

    def _activities(self, q: dict[str, str], activities: list[dict], when: str) -> list[dict]:
        """GET /v2/account/activities[/FILL]: newest first unless asc; after/until compare each
        activity's `when` (a time, or a date as its midnight UTC); page_token is the id of the
        previous page's last activity; at most 100 a page."""
        ascending = q.get("direction", "desc") == "asc"
        rows = activities if ascending else activities[::-1]
        after = parse_ns(q["after"]) if q.get("after") else None
        until = parse_ns(q["until"]) if q.get("until") else None

        def at(activity: dict) -> int:
            value = activity[when]
            return parse_ns(value if "T" in value else f"{value}T00:00:00Z")

        rows = [
            a for a in rows if (after is None or at(a) > after) and (until is None or at(a) < until)
        ]
        if q.get("page_token"):
            ids = [a["id"] for a in rows]
            if q["page_token"] not in ids:
                raise ApiError(422, "invalid page_token", 40010001)
            rows = rows[ids.index(q["page_token"]) + 1 :]
        return rows[: min(int(q.get("page_size") or 100), 100)]

    def _replace(self, order: dict, body: dict) -> dict:
        if order["status"] in CLOSED_STATUSES:
            raise ApiError(422, f'order is already in "{order["status"]}" state', 42210000)
        fresh = {
            "symbol": order["symbol"],
            "side": order["side"],
            "type": order["type"],
            "time_in_force": body.get("time_in_force") or order["time_in_force"],
            "qty": body.get("qty", order["qty"]),
            "limit_price": body.get("limit_price", order["limit_price"]),
            "stop_price": body.get("stop_price", order["stop_price"]),
            "extended_hours": order["extended_hours"],
            "client_order_id": body.get("client_order_id"),
        }
        trail_field = "trail_percent" if order["trail_percent"] else "trail_price"
        fresh[trail_field] = body.get("trail", order[trail_field])
        new = self._create(fresh, replaces=order["id"])
        now = new["submitted_at"]
        order.update(status="replaced", replaced_by=new["id"], replaced_at=now, updated_at=now)
        return new

    def _bars(self, q: dict[str, str]) -> dict:
        start = parse_ns(q["start"]) if q.get("start") else 0
        end = parse_ns(q["end"]) if q.get("end") else None
        rows = [
            (symbol, bar)
            for symbol in sorted(q.get("symbols", "").split(","))
            for bar in self.bars.get(symbol, [])
            if start <= parse_ns(bar["t"]) and (end is None or parse_ns(bar["t"]) <= end)
        ]
        offset = int(base64.b64decode(q["page_token"])) if q.get("page_token") else 0
        size = min(int(q.get("limit") or 10_000), self.bars_page_size)
        page, rest = rows[offset : offset + size], rows[offset + size :]
        grouped: dict[str, list[dict]] = {}
        for symbol, bar in page:
            grouped.setdefault(symbol, []).append(bar)
        token = base64.b64encode(str(offset + size).encode()).decode() if rest else None
        return {"bars": grouped, "next_page_token": token}


def ok(data: Any) -> Answer:
    return 200, data, {}


def _truthy(value: str | None) -> bool:
    # alpaca-py sends Python booleans in query strings: "True"/"False".
    return (value or "").lower() == "true"


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake: FakeAlpacaREST = self.server.fake  # type: ignore[attr-defined]
        status, payload, extra_headers = fake.dispatch(self.command, self.path, body, headers)
        if payload is None:
            data = b""
        elif isinstance(payload, str):  # a scripted non-JSON body (a proxy's HTML page)
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in extra_headers.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


# --- WebSocket fakes ---------------------------------------------------------


class _WebSocketFake:
    """An asyncio WebSocket server on 127.0.0.1 in a thread of its own."""

    path = "/"

    def __init__(self, key_id: str = KEY_ID, secret: str = SECRET):
        self.key_id, self.secret = key_id, secret
        # "ok": normal; "refuse": reject the credentials; "silent": never answer auth.
        self.auth_mode = "ok"
        self.received: list[Any] = []  # every client message, decoded
        self.connections: list[Any] = []  # authenticated sessions
        self.connects = 0
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}{self.path}"

    def start(self) -> _WebSocketFake:
        self._thread.start()

        async def listen() -> Server:
            return await serve(self._accept, "127.0.0.1", 0)

        self._server = self._call(listen())
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            # Cut connections rather than close them: a client whose event loop is not
            # running (a test's, during teardown) never answers a closing handshake.
            for connection in self._server.connections:
                connection.transport.abort()
            self._server.close()
            await self._server.wait_closed()

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def drop(self) -> None:
        """Cut every client connection without a closing handshake, as a network failure
        would (and without waiting on the client, whose loop may be the caller's)."""

        async def abort_all() -> None:
            for session in list(self.connections):
                session.ws.transport.abort()

        self._call(abort_all())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=5)

    async def _accept(self, ws: ServerConnection) -> None:
        self.connects += 1
        try:
            await self._session(ws)
        except ConnectionClosed:
            pass
        finally:
            self.connections[:] = [s for s in self.connections if s.ws is not ws]

    async def _session(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    def _credentials_ok(self, key: str | None, secret: str | None) -> bool:
        return self.auth_mode == "ok" and key == self.key_id and secret == self.secret


@dataclass
class _MarketDataSession:
    ws: ServerConnection
    subscriptions: dict[str, set[str]] = field(
        default_factory=lambda: {channel: set() for channel in MD_CHANNELS}
    )


MD_CHANNELS = ("trades", "quotes", "bars")
MD_CONTROL = load_fixture("stream_md_control_frames.json")
TRADING_CONTROL = load_fixture("stream_trading_control_messages.json")
MD_TYPE_CHANNEL = {"t": "trades", "q": "quotes", "b": "bars"}


def _pack(messages: list[dict]) -> bytes:
    return msgpack.packb(messages)


def to_msgpack_timestamp(iso: str) -> msgpack.Timestamp:
    seconds, nanos = divmod(parse_ns(iso), 10**9)
    return msgpack.Timestamp(seconds, nanos)


class FakeMarketDataStream(_WebSocketFake):
    """Alpaca's stock stream: msgpack frames, each an array of messages.

    Scripted faults, as Alpaca shows them: `auth_mode` "refuse" (402 auth failed), "silent"
    (never answers the auth) or "insufficient" (409, the feed not in the plan);
    `max_connections` (406 connection limit exceeded to a connection past it, as Alpaca's one
    connection per key); `symbol_limit` (405 symbol limit exceeded to a subscribe that would
    pass it, which then changes nothing); drop() cuts every connection.
    """

    path = "/v2/iex"

    def __init__(self, key_id: str = KEY_ID, secret: str = SECRET):
        super().__init__(key_id, secret)
        self.max_connections: int | None = None
        self.symbol_limit: int | None = None
        self.refused_at: list[float] = []  # monotonic times of connections refused with 406

    async def _session(self, ws: ServerConnection) -> None:
        await ws.send(_pack(MD_CONTROL["success_connected"]))
        auth = msgpack.unpackb(await ws.recv())
        self.received.append(auth)
        if self.auth_mode == "silent":
            await ws.wait_closed()
            return
        if self.auth_mode == "insufficient":  # e.g. the SIP feed without its subscription
            await ws.send(_pack(MD_CONTROL["error_insufficient_subscription_409"]))
            await ws.close()
            return
        if auth.get("action") != "auth" or not self._credentials_ok(
            auth.get("key"), auth.get("secret")
        ):
            await ws.send(_pack(MD_CONTROL["error_auth_failed_402"]))
            await ws.close()
            return
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            self.refused_at.append(time.monotonic())
            await ws.send(_pack(MD_CONTROL["error_connection_limit_exceeded_406"]))
            await ws.close()
            return
        await ws.send(_pack(MD_CONTROL["success_authenticated"]))
        session = _MarketDataSession(ws)
        self.connections.append(session)
        async for raw in ws:
            message = msgpack.unpackb(raw)
            self.received.append(message)
            action = message.get("action")
            changed = {
                channel: set(message.get(channel, []))
                for channel in MD_CHANNELS
                if channel in message
            }
            if action == "subscribe" and self._over_symbol_limit(session, changed):
                await ws.send(_pack(MD_CONTROL["error_symbol_limit_exceeded_405"]))
                continue
            for channel, symbols in changed.items():
                if action == "subscribe":
                    session.subscriptions[channel] |= symbols
                elif action == "unsubscribe":
                    session.subscriptions[channel] -= symbols
            reply = {"T": "subscription"}
            reply |= {c: sorted(s) for c, s in session.subscriptions.items()}
            await ws.send(_pack([reply]))

    def _over_symbol_limit(self, session: _MarketDataSession, added: dict[str, set[str]]) -> bool:
        if self.symbol_limit is None:
            return False
        held = set().union(*session.subscriptions.values(), *added.values())
        return len(held) > self.symbol_limit

    def subscriptions(self) -> list[dict[str, set[str]]]:
        """Each connection's subscription now (copies: the sessions change them later)."""
        sessions = list(self.connections)  # the fake's thread changes the list
        return [{c: set(s) for c, s in session.subscriptions.items()} for session in sessions]

    def subscribed(self, symbols: set[str]) -> bool:
        """Whether exactly one connection holds exactly `symbols` on every channel."""
        subs = self.subscriptions()
        return len(subs) == 1 and all(subs[0][c] == symbols for c in MD_CHANNELS)

    def push(self, *messages: dict) -> int:
        """Send messages (JSON fixture shape, `t` as text) to subscribed clients, as one frame
        each. Returns how many clients got something."""

        async def send() -> int:
            sent = 0
            for session in list(self.connections):
                wanted = [
                    {**m, "t": to_msgpack_timestamp(m["t"])}
                    for m in messages
                    if m["S"] in session.subscriptions[MD_TYPE_CHANNEL[m["T"]]]
                ]
                if wanted:
                    await session.ws.send(_pack(wanted))
                    sent += 1
            return sent

        return self._call(send())


@dataclass
class _TradingSession:
    ws: ServerConnection
    listening: bool = False


class FakeTradingStream(_WebSocketFake):
    """Alpaca's trade_updates stream: JSON. Alpaca sends its frames as binary; alpaca-py's
    json.loads takes bytes or text, and the fake sends binary like the real server."""

    path = "/stream"

    async def _send(self, ws: ServerConnection, message: dict) -> None:
        await ws.send(json.dumps(message).encode())

    async def _session(self, ws: ServerConnection) -> None:
        auth = json.loads(await ws.recv())
        self.received.append(auth)
        if self.auth_mode == "silent":
            await ws.wait_closed()
            return
        data = auth.get("data") or {}
        ok = auth.get("action") == "authenticate" and self._credentials_ok(
            data.get("key_id"), data.get("secret_key")
        )
        reply = "server_authorized_authenticate" if ok else "server_unauthorized_authenticate"
        await self._send(ws, TRADING_CONTROL[reply])
        if not ok:
            await ws.close()
            return
        session = _TradingSession(ws)
        self.connections.append(session)
        async for raw in ws:
            message = json.loads(raw)
            self.received.append(message)
            if message.get("action") == "listen":
                streams = message.get("data", {}).get("streams", [])
                session.listening = "trade_updates" in streams
                await self._send(ws, {"stream": "listening", "data": {"streams": streams}})

    def push_trade_update(self, event: str, order: dict, **fields: Any) -> int:
        """Send a trade_updates event about `order` to listening clients."""
        data = {
            "event": event,
            "execution_id": str(uuid.uuid4()),
            "order": order,
            "timestamp": order["updated_at"],
            **fields,
        }

        async def send() -> int:
            sessions = [s for s in list(self.connections) if s.listening]
            for session in sessions:
                await self._send(session.ws, {"stream": "trade_updates", "data": data})
            return len(sessions)

        return self._call(send())


async def eventually(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    """Poll until predicate() is truthy (returning it), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)
