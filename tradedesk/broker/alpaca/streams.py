"""Market-data and order-update streams over alpaca-py's StockDataStream and TradingStream.

alpaca-py's streams reconnect with backoff and resubscribe on their own, but report their
state only to their log: a refused or unanswered authentication is retried forever in the
background. The adapter subclasses them to hook the two moments that matter, connection
(auth) and disconnection, reports "up"/"down" through the desk's status handler, and bounds
connect + auth by `auth_timeout` so a silent server is reported down and retried.

On the market-data stream it also reads Alpaca's error codes (the SDK keeps only the text):
402 refused keys and 406 "connection limit exceeded" (another connection holds the key's one
stream: the SDK's exponential backoff makes this one wait its turn rather than fight), and
subscription refusals (405 symbol limit, 409/410), which the desk reports per symbol.

Both run inside the caller's event loop: run() awaits the SDK's `_run_forever` coroutine
(its public run() would start a loop of its own with asyncio.run).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgpack
import websockets
from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.stream import TradingStream
from django.conf import settings

from ..base import (
    FeedStatusHandler,
    MarketDataHandler,
    MarketDataStream,
    OrderUpdateHandler,
    OrderUpdateStream,
    SymbolsRefusedHandler,
)
from ..errors import BrokerUnavailable
from . import convert

if TYPE_CHECKING:
    from .. import BrokerCredentials

log = logging.getLogger(__name__)

DEFAULT_AUTH_TIMEOUT_SECONDS = 10.0  # Alpaca itself drops a connection not authed in 10 s
# How long stop() lets the SDK wind down on its own before cancelling it.
STOP_GRACE_SECONDS = 1.0
MARKET_DATA_CHANNELS = ("trades", "quotes", "bars")
# Alpaca's market-data errors that refuse a subscribe message, the subscription staying as it
# was: 400 invalid syntax, 405 symbol limit exceeded, 409 insufficient subscription, 410 invalid
# subscribe action for this feed.
SUBSCRIBE_REFUSALS = frozenset({400, 405, 409, 410})
# What a refused authentication means for the desk, by Alpaca's code.
AUTH_REFUSALS = {
    402: "Alpaca refused the market-data keys",
    406: "another connection holds this key's one market-data stream; waiting to retry",
}


class _FeedState:
    """One stream's reported state: only changes reach the status handler."""

    def __init__(self, name: str, on_status: FeedStatusHandler, auth_timeout: float):
        self.name = name
        self.on_status = on_status
        self.auth_timeout = auth_timeout
        self.state: str | None = None
        self.detail = ""
        self.stopping = False

    async def report(self, state: str, detail: str) -> None:
        if state == self.state:
            return
        self.state, self.detail = state, detail
        log.info("%s stream %s: %s", self.name, state, detail)
        try:
            await self.on_status(state, detail)
        except Exception:
            # A failing status handler must not take the SDK's connection loop down with it.
            log.exception("%s stream status handler failed", self.name)


class _StatusHooks:
    """Mixed into an alpaca-py stream class (first in the MRO) to report its state."""

    _ws: Any

    def __init__(self, feed_state: _FeedState, reconnect_min_backoff: float, **kwargs: Any):
        super().__init__(**kwargs)
        self._feed = feed_state
        self._reconnect_min_backoff = reconnect_min_backoff

    async def _start_ws(self) -> None:
        try:
            # The SDK waits on connect and auth replies without a timeout. (asyncio.timeout,
            # not wait_for: Python 3.11's wait_for can lose a cancellation that meets a
            # refused connection, and the SDK would then retry forever.)
            async with asyncio.timeout(self._feed.auth_timeout):
                await super()._start_ws()  # type: ignore[misc]
        except TimeoutError:
            detail = f"not authenticated within {self._feed.auth_timeout:g} s"
            await self._feed.report("down", detail)
            raise
        except Exception as exc:  # refused auth, refused connection: the SDK retries
            await self._feed.report("down", f"connect or auth failed: {exc}")
            raise
        await self._feed.report("up", "authenticated")

    async def close(self) -> None:
        was_open = self._ws is not None
        await super().close()  # type: ignore[misc]
        if was_open:
            await self._feed.report("down", "stopped" if self._feed.stopping else "disconnected")


class _Refused(ValueError):
    """Alpaca's error frame, code kept (a ValueError with the SDK's text, so the SDK's own
    checks on it, e.g. "insufficient subscription" ending its loop, still apply)."""

    def __init__(self, code: int | None, message: str):
        super().__init__(message)
        self.code = code

    def __str__(self) -> str:
        meaning = AUTH_REFUSALS.get(self.code)
        text = f"{self.args[0]} ({self.code})"
        return f"{text}: {meaning}" if meaning else text


class _StockStream(_StatusHooks, StockDataStream):
    def __init__(self, feed_state, reconnect_min_backoff, on_refused, **kwargs):
        super().__init__(feed_state, reconnect_min_backoff, **kwargs)
        self._on_refused = on_refused
        self.confirmed: set[str] = set()  # what Alpaca's last `subscription` message listed

    async def _start_ws(self) -> None:
        self.confirmed = set()  # a new session starts with no subscription
        await super()._start_ws()

    async def _auth(self) -> None:
        # The SDK's own _auth, keeping Alpaca's error code (402, 406) instead of only its text.
        await self._ws.send(
            msgpack.packb({"action": "auth", "key": self._api_key, "secret": self._secret_key})
        )
        reply = msgpack.unpackb(await self._ws.recv())[0]
        if reply.get("T") == "error":
            raise _Refused(reply.get("code"), reply.get("msg") or "auth failed")
        if reply.get("T") != "success" or reply.get("msg") != "authenticated":
            raise ValueError("failed to authenticate")

    async def _dispatch(self, msg: dict) -> None:
        kind = msg.get("T")
        if kind == "subscription":
            self.confirmed = {s for c in MARKET_DATA_CHANNELS for s in msg.get(c) or ()}
        elif kind == "error" and msg.get("code") in SUBSCRIBE_REFUSALS:
            await self._refuse_unconfirmed(f"{msg.get('msg')} ({msg.get('code')})")
        await super()._dispatch(msg)

    async def _refuse_unconfirmed(self, reason: str) -> None:
        """Alpaca refused a subscribe: what it has not confirmed leaves the table (else every
        later subscribe, which sends the whole table, would be refused again)."""
        refused = {s for c in MARKET_DATA_CHANNELS for s in self._handlers[c]} - self.confirmed
        for channel in MARKET_DATA_CHANNELS:
            for symbol in refused:
                self._handlers[channel].pop(symbol, None)
        if refused:
            log.warning("market-data stream refused %s: %s", sorted(refused), reason)
            try:
                await self._on_refused(refused, reason)
            except Exception:
                log.exception("market-data stream refusal handler failed")


class _TradingStream(_StatusHooks, TradingStream):
    pass


class _SdkStreamRunner:
    """run()/stop() around an alpaca-py stream's `_run_forever` in the caller's loop."""

    _sdk: _StockStream | _TradingStream
    _feed: _FeedState
    _task: asyncio.Future | None = None

    async def _run_sdk(self) -> None:
        self._task = asyncio.ensure_future(self._sdk._run_forever())
        try:
            # Not `await self._task`: that hands our cancellation to the SDK's loop, which can
            # lose it (its own wait_for calls) and run on; here a cancellation ends it by stop().
            await asyncio.wait({self._task})
        except asyncio.CancelledError:
            await self.stop()
            raise
        if self._task.cancelled():  # stop() cut the SDK's wind-down short
            return
        self._task.result()

    async def stop(self) -> None:
        self._feed.stopping = True
        await self._sdk.stop_ws()
        # Closing the socket wakes a pending receive now rather than at the SDK's 5 s poll.
        await self._sdk.close()
        if self._task is not None and not self._task.done():
            done, _ = await asyncio.wait({self._task}, timeout=STOP_GRACE_SECONDS)
            if not done:
                self._task.cancel()
        await self._feed.report("down", "stopped")


def _relay(
    name: str, deliver: Callable[[Any], Awaitable[None]], converter: Callable[[Any], Any]
) -> Callable[[Any], Awaitable[None]]:
    """An SDK handler that converts and delivers one message; a failure costs that message
    only (raised into the SDK, it would drop the rest of the frame)."""

    async def relay(item: Any) -> None:
        try:
            await deliver(converter(item))
        except Exception:
            log.exception("%s stream: cannot deliver %r", name, item)

    return relay


class AlpacaMarketDataStream(_SdkStreamRunner, MarketDataStream):
    """Trades, quotes and minute bars from Alpaca's stock stream (msgpack, one per account)."""

    def __init__(
        self,
        on_data: MarketDataHandler,
        on_status: FeedStatusHandler,
        credentials: BrokerCredentials,
        *,
        on_refused: SymbolsRefusedHandler | None = None,
        auth_timeout: float | None = None,
        reconnect_min_backoff: float | None = None,
    ):
        super().__init__(on_data, on_status, on_refused)
        if auth_timeout is None:
            auth_timeout = settings.ALPACA_STREAM_AUTH_TIMEOUT_SECONDS
        if reconnect_min_backoff is None:
            reconnect_min_backoff = settings.ALPACA_STREAM_RECONNECT_MIN_SECONDS
        self._feed = _FeedState("market-data", on_status, auth_timeout)
        self._sdk = _StockStream(
            self._feed,
            reconnect_min_backoff,
            self._refused,
            api_key=credentials.key_id,
            secret_key=credentials.secret,
            feed=DataFeed(settings.ALPACA_DATA_FEED),
            url_override=settings.ALPACA_DATA_STREAM_URL or None,
        )
        self._relays = {
            "trades": _relay("market-data", self.on_data, convert.trade_from_alpaca),
            "quotes": _relay("market-data", self.on_data, convert.quote_from_alpaca),
            "bars": _relay("market-data", self.on_data, convert.bar_from_alpaca),
        }
        self._symbols: set[str] = set()
        self._wake = asyncio.Event()

    async def run(self) -> None:
        # The SDK spins (sleep(0) in a loop) until it has a subscription: wait here instead.
        await self._wake.wait()
        if self._feed.stopping:
            return
        await self._run_sdk()
        if not self._feed.stopping:
            # The SDK gives up by itself only on "insufficient subscription": the hub retries.
            raise BrokerUnavailable(f"Alpaca ended the market-data stream: {self._feed.detail}")

    async def _refused(self, symbols: set[str], reason: str) -> None:
        if self.on_refused is not None:
            await self.on_refused(symbols, reason)

    async def stop(self) -> None:
        self._wake.set()
        await super().stop()

    async def set_symbols(self, symbols: set[str]) -> None:
        added, removed = symbols - self._symbols, self._symbols - symbols
        self._symbols = set(symbols)
        # alpaca-py's subscribe_*/unsubscribe_* block on a cross-thread future while
        # connected, which deadlocks when called from the stream's own loop. So the adapter
        # edits the SDK's handler table (what a reconnect resubscribes from) and sends the
        # change with the SDK's own message builders.
        handlers = self._sdk._handlers
        for channel in MARKET_DATA_CHANNELS:
            for symbol in removed:
                handlers[channel].pop(symbol, None)
            for symbol in added:
                handlers[channel][symbol] = self._relays[channel]
        if self._symbols:
            self._wake.set()
        if not (self._sdk._running and self._sdk._ws is not None):
            return  # the (re)connect subscribes to the whole table
        try:
            if removed:
                for channel in MARKET_DATA_CHANNELS:
                    await self._sdk._send_unsubscribe_msg(channel, sorted(removed))
            if added:
                await self._sdk._send_subscribe_msg()
        except websockets.ConnectionClosed:
            pass  # the reconnect resubscribes from the table


class AlpacaOrderUpdateStream(_SdkStreamRunner, OrderUpdateStream):
    """An account's trade_updates (JSON) as OrderUpdate events."""

    def __init__(
        self,
        on_update: OrderUpdateHandler,
        on_status: FeedStatusHandler,
        credentials: BrokerCredentials,
        *,
        auth_timeout: float = DEFAULT_AUTH_TIMEOUT_SECONDS,
        reconnect_min_backoff: float = 1.0,
    ):
        super().__init__(on_update, on_status)
        self._feed = _FeedState("order-update", on_status, auth_timeout)
        self._sdk = _TradingStream(
            self._feed,
            reconnect_min_backoff,
            api_key=credentials.key_id,
            secret_key=credentials.secret,
            paper=credentials.paper,
            url_override=settings.ALPACA_TRADING_STREAM_URL or None,
            # The frame as Alpaca sent it: the execution's decimal strings, not floats.
            raw_data=True,
        )
        # Not connected yet, so the SDK's public subscribe doesn't block.
        self._sdk.subscribe_trade_updates(
            _relay(
                "order-update",
                self.on_update,
                lambda frame: convert.order_update_from_alpaca(frame["data"]),
            )
        )

    async def run(self) -> None:
        await self._run_sdk()
