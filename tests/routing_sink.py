"""A real local HTTP sink for the routing tests: a webhook receiver on a free port that
verifies each request (``gateway.routing.webhook.verify``), applies each event (one, or a
batch's) once per idempotency key, and answers as the test scripts it (status, Retry-After, a delay)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from gateway.routing.webhook import DuplicateEvent, WebhookVerificationError, events_of, verify


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Sink:
    secret: str
    #: (sink, event) -> Answer; default: 200
    script: Callable[[Sink, dict[str, Any]], Answer] | None = None
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    verify: bool = True

    def received_keys(self) -> Counter[str]:
        with self.lock:
            return Counter(e["id"] for e in self.received)


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items()}
            try:
                ev = verify(body, headers, sink.secret) if sink.verify else orjson.loads(body)
            except WebhookVerificationError as exc:
                with sink.lock:
                    sink.refused.append(str(exc))
                return self._answer(Answer(401, b'{"error": "bad signature"}'))
            with sink.lock:
                sink.received.append(ev)
                sink.headers.append(headers)
            answer = sink.script(sink, ev) if sink.script else Answer()
            if answer.delay:
                threading.Event().wait(answer.delay)
            if 200 <= answer.status < 300:
                with sink.lock:
                    for one in events_of(ev):  # a batch applies each of its events
                        if one["id"] in sink.applied:
                            sink.duplicates += 1
                        else:
                            sink.applied[one["id"]] = one
            self._answer(answer)

        def _answer(self, answer: Answer) -> None:
            try:
                self.send_response(answer.status)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a client hanging up is not news
            super().handle_error(request, client_address)


@contextmanager
def run_sink(secret: str, script: Callable[[Sink, dict[str, Any]], Answer] | None = None, *, port: int = 0) -> Iterator[Sink]:
    sink = Sink(secret=secret, script=script)
    server = _Server(("127.0.0.1", port), _handler(sink))
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


__all__ = ["Answer", "DuplicateEvent", "Sink", "run_sink"]
