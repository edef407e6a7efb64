"""What a stream consumer cannot ask daphne through ASGI: is the client's socket backed up, and
a close with the code the stream documents (1008, 1013).

Back-pressure. Under daphne an ASGI `send` never waits: daphne hands the bytes to Twisted, whose
transport buffers whatever the kernel will not take, without limit. So a client that reads
slowly (or not at all) never slows its relay connection down, the connection's bounded queue
never fills, and the bytes pile up in daphne's memory instead. ASGI has no back-pressure
signal, so this registers a streaming producer on the Twisted transport (the public
IConsumer.registerProducer, through autobahn's WebSocketProtocol.registerProducer): Twisted
calls pauseProducing when the transport's write buffer passes its high-water mark
(FileDescriptor.bufferSize, 64 KiB) and resumeProducing once it has all gone to the kernel.
The relay reads one flag per frame; no syscall, no polling.

Pings. autobahn answers each WebSocket ping itself, writing the pong to that same unbounded
buffer: a client pinging without reading grew daphne's memory without ever reaching the
stream's queue. The protocol's onPing is replaced so each ping is counted by the stream (its
message rate, and its queue while the socket is backed up) and held back while it is.

Close codes. daphne closes through autobahn's sendClose, which refuses every code but 1000 and
3000-4999 (daphne#374, autobahn-python#1642): an ASGI close with 1008 or 1013 raises inside
daphne and the socket stays open. RFC 6455 lets a server send both, so the close frame goes
through autobahn's sendCloseFrame, which sendClose calls once it has checked the code; the
close handshake then runs as for any close.

What this relies on (daphne, Twisted and autobahn are pinned in requirements.txt; re-check when
upgrading them; market/tests/test_daphne_socket.py runs a real daphne and fails if they change):
- daphne.server.Server.create_application passes `send=partial(self.handle_reply, protocol)`,
  and Channels' middleware and consumer pass it on unchanged (the consumer's `base_send`);
- daphne's upgrade (daphne.http_protocol.WebRequest.process) moves the TCP transport over to
  the WebSocket protocol but leaves twisted.web's HTTPChannel registered as its producer. That
  channel's request never finishes, so its pause/resume would do nothing (HTTPChannel only
  pauses reading between requests): it is replaced;
- autobahn's processControlFrame hands every ping to self._onPing, which calls self.onPing
  (an instance attribute set here shadows the method).
Anything else (another ASGI server, Channels' WebsocketCommunicator) is left alone: no send
buffer (never considered backed up) and closes through ASGI, exactly as before.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from functools import cache, partial

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

logger = logging.getLogger(__name__)


@implementer(IPushProducer)
class SendBuffer:
    """A client socket's write buffer as Twisted reports it: `full` over its high-water mark.

    It also answers the client's WebSocket pings in autobahn's place (which writes a pong for
    every ping straight to the unbounded transport buffer): `on_ping` is told of each (the
    stream counts it against its message rate and its queue), and while the buffer is full only
    the latest ping is answered, once it drains (RFC 6455 5.5.3 allows answering only the
    most recent).
    """

    def __init__(self, protocol=None) -> None:
        self.full = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._protocol = protocol
        self._pong_due: bytes | None = None
        self.on_ping: Callable[[], None] | None = None

    def ping_received(self, payload: bytes) -> None:
        """Installed as the daphne protocol's onPing."""
        if self.on_ping is not None:
            self.on_ping()
        if self.full:
            self._pong_due = payload
        else:
            self._send_pong(payload)

    def _send_pong(self, payload: bytes) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.state == protocol.STATE_OPEN:
            protocol.sendPong(payload)

    async def drained(self) -> None:
        """Returns once the buffered bytes have gone to the kernel (or the connection is gone)."""
        await self._drained.wait()

    # IPushProducer, called by the Twisted transport on the event loop's thread.
    def pauseProducing(self) -> None:
        self.full = True
        self._drained.clear()

    def resumeProducing(self) -> None:
        self.full = False
        self._drained.set()
        if self._pong_due is not None:
            payload, self._pong_due = self._pong_due, None
            self._send_pong(payload)

    def stopProducing(self) -> None:
        """The connection is lost: nothing to wait for any more (daphne drops later sends)."""
        self._pong_due = None
        self.resumeProducing()


def watch_send_buffer(send: Callable) -> SendBuffer | None:
    """The send buffer behind a consumer's ASGI `send`, or None when it cannot be seen."""
    protocol = _daphne_protocol(send)
    if protocol is None:
        return None
    from twisted.web.http import HTTPChannel

    if not isinstance(getattr(protocol.transport, "producer", None), HTTPChannel):
        _warn_unexpected_transport()
        return None
    buffer = SendBuffer(protocol)
    protocol.unregisterProducer()  # the upgrade's spent HTTPChannel
    protocol.registerProducer(buffer, True)
    # An instance attribute, read by autobahn's _onPing (self.onPing) for every ping frame.
    protocol.onPing = buffer.ping_received
    return buffer


# How long the client gets to answer our close before the connection is dropped (autobahn's
# default is 1 s). A slow client closed with 1013 first reads what was queued before the close
# frame; with 1 s it was often reset before it got there and never saw why.
CLOSE_HANDSHAKE_TIMEOUT_S = 10


def close_with_code(send: Callable, code: int) -> bool:
    """Start the close handshake with `code` under daphne; False elsewhere (close through ASGI)."""
    protocol = _daphne_protocol(send)
    if protocol is None:
        return False
    # Per connection (autobahn copies its factory's options onto each protocol at connect).
    protocol.closeHandshakeTimeout = CLOSE_HANDSHAKE_TIMEOUT_S
    protocol.sendCloseFrame(code=code, isReply=False)  # a no-op once closing or closed
    return True


def _daphne_protocol(send: Callable):
    """daphne's WebSocketProtocol behind `send`, or None."""
    # Looked up, not imported: importing daphne.server installs Twisted's reactor, which only
    # daphne may do.
    daphne_server = sys.modules.get("daphne.server")
    if (
        daphne_server is None
        or not isinstance(send, partial)
        or not isinstance(getattr(send.func, "__self__", None), daphne_server.Server)
    ):
        return None
    return send.args[0]


@cache
def _warn_unexpected_transport() -> None:
    """Once per process: every connection would say the same."""
    logger.warning(
        "daphne's WebSocket transport is not the one market/daphne_socket.py expects: "
        "slow stream clients will not be detected"
    )
