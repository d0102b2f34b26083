"""What the network between a robot and a real system does to requests.

An ASGI middleware that injects the configured faults (500s, dropped connections,
slow answers, 429 with Retry-After above a request rate, a system that serves only so many
requests at once and queues the rest) and keeps the traffic log tests read: who asked for
what, when, and how many requests (and accounts, ``Gate.busiest``) were in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox._gate import Gate
from sandbox._switches import Switches

CONTROL_PREFIX = "/__sandbox__"


@dataclass(frozen=True)
class RequestRecord:
    username: str | None
    method: str
    path: str
    status: int
    started: float
    ended: float
    user_agent: str = ""


@dataclass
class TrafficLog:
    requests: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=100_000))
    in_flight: int = 0
    max_in_flight: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {"500": 0, "drop": 0, "slow": 0, "429": 0})

    def reset(self) -> None:
        self.requests.clear()
        self.max_in_flight = self.in_flight
        self.faults = dict.fromkeys(self.faults, 0)


class Traffic:
    """Wraps one system's app; control endpoints under ``/__sandbox__`` pass untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        switches: Switches,
        gate: Gate,
        cookie_name: str,
        login_post: str = "/login",
        log: TrafficLog,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.switches = switches
        self.gate = gate
        self.cookie_name = cookie_name
        self.login_post = login_post
        self.log = log
        self.rng = rng
        self.clock = clock
        self._recent: dict[str, deque[float]] = {}
        self._workers: tuple[int, asyncio.Semaphore] | None = None  # for ``serve_at_once``, made on first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        status = 0

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.time()
        self.log.in_flight += 1
        self.log.max_in_flight = max(self.log.max_in_flight, self.log.in_flight)
        try:
            with self.gate.serving(conn.cookies.get(self.cookie_name)):
                await self._handle(conn, scope, receive, tracked_send)
        finally:
            self.log.in_flight -= 1
            username = self.gate.peek_user(conn.cookies.get(self.cookie_name))
            self.log.requests.append(
                RequestRecord(
                    username,
                    scope["method"],
                    scope["path"],
                    status,
                    started,
                    time.time(),
                    conn.headers.get("user-agent", ""),
                )
            )

    async def _handle(self, conn: HTTPConnection, scope: Scope, receive: Receive, send: Send) -> None:
        sw = self.switches
        client = conn.client.host if conn.client else "-"
        retry_after = self._rate_limited(client)
        if retry_after:
            self.log.faults["429"] += 1
            response = PlainTextResponse(
                "访问过于频繁，请稍后再试", status_code=429, headers={"Retry-After": str(retry_after)}
            )
            await response(scope, receive, send)
            return
        async with self._worker():
            if sw.work_seconds:
                await asyncio.sleep(sw.work_seconds)
            await self._serve(conn, scope, receive, send)

    def _worker(self) -> contextlib.AbstractAsyncContextManager[object]:
        """One of the ``serve_at_once`` workers, waited for in the queue; none to wait for at 0."""
        at_once = self.switches.serve_at_once
        if not at_once:
            return contextlib.nullcontext()
        if self._workers is None or self._workers[0] != at_once:  # a changed switch starts a new queue
            self._workers = (at_once, asyncio.Semaphore(at_once))
        return self._workers[1]

    async def _serve(self, conn: HTTPConnection, scope: Scope, receive: Receive, send: Send) -> None:
        sw = self.switches
        if sw.login_fault and scope["method"] == "POST" and scope["path"] == self.login_post:
            await self._login_fault(scope, receive, send)
            return
        draw = self.rng.random()
        if draw < sw.fault_500_rate:
            self.log.faults["500"] += 1
            await PlainTextResponse("系统繁忙，请稍后再试（500）", status_code=500)(scope, receive, send)
            return
        draw -= sw.fault_500_rate
        if draw < sw.fault_drop_rate:
            self.log.faults["drop"] += 1
            await _drop(send)
            return
        draw -= sw.fault_drop_rate
        if draw < sw.fault_slow_rate:
            self.log.faults["slow"] += 1
            await asyncio.sleep(sw.slow_seconds)
        await self.app(scope, receive, send)

    async def _login_fault(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The worst kind of broken login: the system checks (and counts) the password, then fails."""

        async def swallow(message: Message) -> None:
            pass

        await self.app(scope, receive, swallow)
        if self.switches.login_fault == "drop":
            self.log.faults["drop"] += 1
            await _drop(send)
        else:
            self.log.faults["500"] += 1
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)

    def _rate_limited(self, client: str) -> int:
        """Seconds to wait if ``client`` is over the rate, else 0 (a one-second sliding window)."""
        limit = self.switches.rate_limit_per_s
        if not limit:
            return 0
        now = self.clock()
        window = self._recent.setdefault(client, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(1.0 - (now - window[0])))
        window.append(now)
        return 0


class DroppedConnection(Exception):
    """Raised after a half-sent response so the server closes the socket mid-body."""


async def _drop(send: Send) -> None:
    # ASGI gives no handle on the socket; promising a body and then failing makes the
    # server abort the connection, which is what a client sees when a proxy drops it.
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
    await send({"type": "http.response.body", "body": b"<html><body>", "more_body": True})
    raise DroppedConnection("sandbox fault injection: connection dropped")
