"""A tiny real HTTP server that plays back canned answers, for behaviours the simulator never shows.

The simulator follows the platform's rules; a client must also survive a platform that breaks them
(a cursor handed back twice, odd JSON shapes). This server answers over real loopback HTTP with
the exact bytes a test gives it, so nothing in the client is mocked.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class CannedServer:
    """Serve queued ``(status, body, headers)`` answers in order; record the JSON bodies received."""

    def __init__(self) -> None:
        self.answers: deque[tuple[int, bytes, dict[str, str]]] = deque()
        self.received: list[Any] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                canned.received.append(json.loads(raw) if raw else None)
                status, body, headers = canned.answers.popleft() if canned.answers else (500, b"{}", {})
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A short poll interval: shutdown() waits for serve_forever's next poll (0.5 s by default).
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/shop"

    def add(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers.append((status, raw, dict(headers or {})))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned_server() -> Iterator[CannedServer]:
    server = CannedServer()
    yield server
    server.close()
