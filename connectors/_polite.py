"""Polite fetching: a per-system cap on requests in flight and on their rate, and retries.

Every request a robot makes (page loads, list pages fetched without rendering, API calls,
downloads) passes one ``Polite`` gate per system, retries included, so a system that is
struggling sees fewer requests from us, never more.

The declared rate and concurrency are ceilings, not targets: the gate's ``Pace`` halves both
when the system pushes back (429, 5xx, dropped connections and time-outs, answers growing slow)
and wins them back a little with every good answer (AIMD, as TCP does with its window).
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from loguru import logger
from playwright.async_api import Error as PlaywrightError

from connectors._errors import SystemUnavailable
from connectors._system import Politeness

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RATE_FLOOR = 0.5  # requests/s however hard a system pushes back: the run still ends
# Requests/s won back per second of good answers. Small and absolute on purpose: a system's real
# limit has nothing to do with what we declared, and the slower we climb towards it, the fewer
# requests it refuses each time we reach it (under a 5/s limit, one in 40 to 50 at 0.25).
RATE_STEP = 0.25
DECREASE = 0.5  # the share of rate and concurrency kept after a pushback
LATENCY_WINDOW = 5  # answers whose median is the typical latency: one or two slow ones are not a trend
# Answers count as slow above twice the fastest typical latency seen, plus a slack that keeps the
# jitter of a fast system (a few ms either way) from reading as pushback.
SLOW_FACTOR = 2.0
SLOW_SLACK_S = 0.1


class Reply(Protocol):
    """What both a page navigation and an API response tell us."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> dict[str, str]: ...


R = TypeVar("R", bound=Reply | None)


class Latency:
    """The latencies of one kind of answer, and whether they have grown slow."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.fastest: float | None = None  # the typical latency when nothing of ours was ahead in the queue

    def slow(self, seconds: float, *, alone: bool = False) -> bool:
        """Take one answer's latency; True when it and most recent answers are well above the fastest.

        ``alone``: no other request of ours was in flight when it was sent, so it waited behind none
        of ours: its latency is the system's own speed, taken as the new normal (a system that
        became slower for everyone is not read as pushback for ever).
        """
        self.recent.append(seconds)
        typical = statistics.median(self.recent)
        if alone or self.fastest is None or typical < self.fastest:
            self.fastest = typical
            return False
        bound = SLOW_FACTOR * self.fastest + SLOW_SLACK_S
        # Both: the median ignores a stray slow answer, and this answer's own time keeps the fast
        # answers that follow a back-off from backing off again on the median's memory.
        return seconds > bound and typical > bound


class Pace:
    """How hard to press one system now: between a floor and the declared ceilings, AIMD.

    ``back_off`` halves the rate and the concurrency; only a request sent in the current
    ``round`` (each back-off starts a new one) may do it, so a burst of refusals to requests
    sent at one pace counts once. Each good answer adds ``RATE_STEP / rate`` to the rate (so
    it climbs ``RATE_STEP`` requests/s per second of good answers) and one request in flight
    per window of good answers, up to the ceilings.
    """

    def __init__(
        self, politeness: Politeness, *, floor_rate: float = RATE_FLOOR, floor_concurrency: int = 1
    ) -> None:
        self.ceiling_rate = politeness.rate
        self.ceiling_concurrency = politeness.concurrency
        self.floor_rate = min(floor_rate, politeness.rate)
        self.floor_concurrency = min(floor_concurrency, politeness.concurrency)
        self.rate = politeness.rate
        self.round = 0
        self._window = float(politeness.concurrency)
        # A rendered page takes longer than a raw fetch from the same system: each kind of answer
        # is timed against its own kind, or a walk that starts rendering would read as a system slowing.
        self._latency: dict[str, Latency] = {}

    @property
    def concurrency(self) -> int:
        """Requests allowed in flight now."""
        return max(self.floor_concurrency, int(self._window))

    def answered(self, sent_in: int, seconds: float, kind: str = "", *, alone: bool = False) -> bool:
        """A good answer after ``seconds``; True if it was slow enough to back off (it did).

        ``alone``: it was sent while no other request of ours was in flight (see ``Latency.slow``).
        """
        if self._latency.setdefault(kind, Latency()).slow(seconds, alone=alone):
            return self.back_off(sent_in)
        self.rate = min(self.ceiling_rate, self.rate + RATE_STEP / self.rate)
        self._window = min(float(self.ceiling_concurrency), self._window + 1 / self._window)
        return False

    def back_off(self, sent_in: int, served: float | None = None) -> bool:
        """The system pushed back at a request sent in round ``sent_in``; True if the pace went down.

        ``served``: the requests it answered well in the last second, when known. Halving what it
        took rather than what we asked for reaches a limit far below our ceiling in one refusal, not
        one refusal per halving.
        """
        if sent_in != self.round:
            return False  # sent before the latest back-off: already answered for
        rate = max(self.floor_rate, min(self.rate, served or self.rate) * DECREASE)
        window = max(float(self.floor_concurrency), self._window * DECREASE)
        if (rate, window) == (self.rate, self._window):
            return False  # at the floor already
        self.rate, self._window = rate, window
        self.round += 1
        return True


class Polite:
    """The gate of one system in this process: ``pace.concurrency`` in flight, ``pace.rate`` a second."""

    def __init__(self, politeness: Politeness, *, name: str = "", pace: Pace | None = None) -> None:
        self.politeness = politeness
        self.name = name
        self.pace = pace or Pace(politeness)
        self._in_flight = 0  # slots held, some still waiting for their start time
        self._sending = 0  # requests sent and not yet answered
        # When the latest good answers came; more than the ceiling rate's worth is never needed.
        self._served: deque[float] = deque(maxlen=math.ceil(politeness.rate) + 1)
        self._freed = asyncio.Event()
        self._next_start = 0.0
        self._pauses = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the system's request slots, started no sooner than the rate allows."""
        while self._in_flight >= self.pace.concurrency:  # the pace may lower it while we wait
            self._freed.clear()
            await self._freed.wait()
        self._in_flight += 1
        try:
            await self._turn()
            yield
        finally:
            self._in_flight -= 1
            self._freed.set()

    async def _turn(self) -> None:
        """Wait for a start time at the current rate; a pause declared meanwhile sends us to the back."""
        loop = asyncio.get_running_loop()
        while True:
            pauses, now = self._pauses, loop.time()
            start = max(now, self._next_start)
            self._next_start = start + 1.0 / self.pace.rate
            if start <= now:
                return
            await asyncio.sleep(start - now)
            if pauses == self._pauses:
                return

    def pause(self, seconds: float) -> None:
        """Start nothing for ``seconds`` (a 429 or 503 said Retry-After): every request waits."""
        now = asyncio.get_running_loop().time()
        self._next_start = max(self._next_start, now + seconds)
        self._pauses += 1

    async def fetch(self, call: Callable[[], Awaitable[R]], what: str) -> R:
        """``call()`` inside a slot, retried on 5xx, 429, timeouts and dropped connections.

        Raises ``SystemUnavailable`` after the declared number of retries.
        """
        problem = ""
        for attempt in range(self.politeness.retries + 1):
            wait = backoff(attempt)
            async with self.slot():
                sent_in = self.pace.round
                try:
                    reply, seconds, alone = await self._send(call)
                except PlaywrightError as exc:  # timeouts, resets and refused connections alike
                    problem = str(exc).splitlines()[0]
                else:
                    status = reply.status if reply is not None else 200
                    if status == 429:
                        problem = "429 too many requests"
                        wait = _retry_after(reply) or wait
                        self.pause(wait)
                    elif status >= 500:
                        problem = f"HTTP {status}"
                        said = _retry_after(reply)
                        if said:  # a 503 may say how long the whole service stays down (RFC 9110)
                            wait = said
                            self.pause(wait)
                    else:
                        self._served.append(asyncio.get_running_loop().time())
                        if self.pace.answered(sent_in, seconds, type(reply).__name__, alone=alone):
                            self._slowed(f"应答变慢，{seconds:.2f} 秒")
                        return reply
                if self.pace.back_off(sent_in, self._served_last_second()):
                    self._slowed(problem)
            logger.debug("{} failed ({}); retry {} in {:.1f}s", what, problem, attempt + 1, wait)
            await asyncio.sleep(wait)
        raise SystemUnavailable(
            f"{self.name or '系统'} 在重试 {self.politeness.retries} 次后仍未应答 {what}（{problem}）："
            "系统可能暂时不可用，稍后会自动重试"
        )

    async def _send(self, call: Callable[[], Awaitable[R]]) -> tuple[R, float, bool]:
        """``call()``, its seconds, and whether it was sent while none of ours was in flight."""
        loop = asyncio.get_running_loop()
        alone, sent = not self._sending, loop.time()
        self._sending += 1
        try:
            return await call(), loop.time() - sent, alone
        finally:
            self._sending -= 1

    def _served_last_second(self) -> int:
        now = asyncio.get_running_loop().time()
        while self._served and now - self._served[0] > 1.0:
            self._served.popleft()
        return len(self._served)

    def _slowed(self, why: str) -> None:
        pace = self.pace
        logger.info(
            "{} 退让（{}）：降到每秒 {:.2f} 个请求、同时 {} 个，应答正常后逐步回升至每秒 {:g} 个、{} 个",
            self.name or "系统",
            why,
            pace.rate,
            pace.concurrency,
            pace.ceiling_rate,
            pace.ceiling_concurrency,
        )


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, so retrying robots do not stampede together."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


def _retry_after(reply: Reply | None) -> float:
    value = (reply.headers.get("retry-after", "") if reply is not None else "").strip()
    try:
        return min(BACKOFF_CAP_S, max(0.0, float(value)))
    except ValueError:
        return 0.0  # an HTTP-date or garbage: fall back to our own backoff
