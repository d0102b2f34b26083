"""A local webhook receiver for alert tests, and a scheduler started for the length of a test."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from robots.runtime import RobotSpec
from scheduler import HarvestScheduler
from settings import Settings


class Receiver:
    """An HTTP server on 127.0.0.1 that answers like DingTalk (errcode 0) and keeps every POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, list[str]], dict[str, Any]]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append((parse_qs(urlsplit(self.path).query), body))
                answer = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def running(settings: Settings, robots: dict[str, RobotSpec]) -> Iterator[HarvestScheduler]:
    daemon = HarvestScheduler(settings, robots=robots)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop(timeout=30)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
