"""A local webhook receiver for tests: records what alerts arrive, answers as scripted.

    with Receiver() as hook:                       # http://127.0.0.1:<free port>
        hook.answers += [(500, {}), (200, {"errcode": 0, "errmsg": "ok"})]
        Notifier([DingTalk(hook.url + "/robot/send?access_token=tok", "SECsecret")]).send(alert)
        (request,) = hook.requests[-1:]
        assert request.dingtalk_signature_valid("SECsecret")

Unscripted requests get HTTP 200 ``{"errcode": 0, "errmsg": "ok"}``, which DingTalk, WeCom
and a JSON webhook all take as delivered. Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from alerts._channels import dingtalk_sign

OK: tuple[int, Any] = (200, {"errcode": 0, "errmsg": "ok"})


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int  # what the receiver answered

    def dingtalk_signature_valid(self, secret: str, *, now: float | None = None) -> bool:
        """Check ``timestamp`` and ``sign`` as DingTalk does: the signature recomputed from the
        timestamp and ``secret`` matches, and the timestamp is within an hour of ``now``."""
        try:
            timestamp = int(self.query["timestamp"])
            sign = self.query["sign"]
        except (KeyError, ValueError):
            return False
        now_ms = (time.time() if now is None else now) * 1000
        if abs(now_ms - timestamp) > 3600 * 1000:
            return False
        return hmac.compare_digest(sign, dingtalk_sign(secret, timestamp))


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 in a thread; ``answers`` are popped one per request."""

    host: str = "127.0.0.1"
    port: int = 0
    answers: list[tuple[int, Any]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw.decode())
                except ValueError:
                    body = raw.decode(errors="replace")
                with receiver._lock:
                    status, answer = receiver.answers.pop(0) if receiver.answers else OK
                    parts = urlsplit(self.path)
                    receiver.requests.append(
                        Received(
                            method="POST",
                            path=parts.path,
                            raw_query=parts.query,
                            query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            status=status,
                        )
                    )
                data = b"" if status == 204 else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="alert-receiver", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
