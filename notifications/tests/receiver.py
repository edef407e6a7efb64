"""A webhook receiver on 127.0.0.1 in a thread, as a desk user would run one: it verifies the
signature with notifications.signing, rejects replays, and answers as scripted."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from notifications.signing import DELIVERY_HEADER, SIGNATURE_HEADER, verify_signature


class Receiver:
    def __init__(self, secret: str = "", answers: tuple[int, ...] = (200,)):
        self.secret = secret
        self.answers = list(answers)  # the status per request; the last one repeats
        self.received: list[dict] = []  # verified requests: headers and parsed body
        self.refused: list[str] = []  # why a request was refused
        self.seen_deliveries: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.answer(self.headers, body)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"try again")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/desk"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, headers, body: bytes) -> int:
        delivery = headers.get(DELIVERY_HEADER, "")
        if not verify_signature(self.secret, headers.get(SIGNATURE_HEADER, ""), body):
            self.refused.append("signature")
            return 400
        if delivery in self.seen_deliveries:
            self.refused.append("replayed delivery")
            return 409
        self.seen_deliveries.add(delivery)
        self.received.append({"delivery": delivery, "body": json.loads(body)})
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
