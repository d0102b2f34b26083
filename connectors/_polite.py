"""Polite fetching: a per-system cap on requests in flight and on their rate, and retries.

Every request a robot makes (page loads, list pages fetched without rendering, API calls,
downloads) passes one ``Polite`` gate per system, retries included, so a system that is
struggling sees fewer requests from us, never more.

The declared rate and concurrency are ceilings, not targets. A new gate's ``Pace`` starts with
one request in flight, each sent only when the one before was answered (so the system's own speed
is the rate; the declared rate caps it), and finds the system's pace from its answers:

- concurrency, from latency: one more request in flight while the answers stay as fast as the
  system is on its own, one fewer when they show more than a request of ours waiting in its
  queue (TCP Vegas's rule, with Little's law: ``in flight × (1 - fastest / typical)`` requests
  are queued). On a system that serves k at once this settles a request or two above k;
- rate, from refusals: at the ceiling until the system refuses one (429), then back at once to
  just under what it accepted in the second before, and from there a slow probe upwards, so a
  rate limit refuses rarely; after other pushback it doubles back with each good answer that
  had to wait for its turn;
- pushback (429, 5xx, dropped connections and time-outs, answers twice as slow as the system's
  own speed) halves both at once, as before (AIMD, as TCP does with its window), and
  ``Retry-After`` stops every request for as long as it says.
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
# Until a system first refuses us, each good answer that waited for the rate doubles it: a fast
# system is met at its pace within a handful of answers, each one a proof that it coped.
SLOW_START = 2.0
# After a 429 the rate comes back at once to this share of what the system accepted in the second
# before, and from there gains PROBE of that per second of good answers. A limit costs one refusal
# and a Retry-After pause each time we reach it: probing slowly makes that rare (under a 5/s
# limit, one refusal in about 20 seconds).
MARK_SHARE = 0.9
PROBE = 0.005
DECREASE = 0.5  # the share of rate and concurrency kept after a pushback
LATENCY_WINDOW = 8  # answers whose mean (the slowest left out) is the typical latency
# Requests of ours waiting in the system's queue: fewer than QUEUE_LOW and the window grows, more
# than QUEUE_HIGH and it shrinks. Between the two one request waits, ready as soon as a worker frees.
QUEUE_LOW = 0.5
QUEUE_HIGH = 1.5
QUEUE_SLACK_S = 0.01  # latency jitter of a fast system (a few ms either way) is not a queue
# Answers count as slow above twice the fastest typical latency seen, plus a slack that keeps the
# jitter of a fast system from reading as pushback: then the pace halves, not just steps back.
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
    """The latencies of one kind of answer: typical, fastest, and what they say about the queue."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.fastest: float | None = None  # the typical latency when nothing of ours was ahead in the queue

    @property
    def typical(self) -> float:
        """The mean of the recent answers without the slowest: one stray slow answer is not a trend."""
        ordered = sorted(self.recent)
        return statistics.fmean(ordered[:-1] or ordered)

    def took(self, seconds: float, *, alone: bool = False) -> None:
        """Take one answer's latency.

        ``alone``: no other request of ours was in flight when it was sent, so it waited behind none
        of ours: its latency is the system's own speed, taken as the new normal (a system that
        became slower for everyone is not read as pushback for ever).
        """
        self.recent.append(seconds)
        typical = self.typical
        if alone or self.fastest is None or typical < self.fastest:
            self.fastest = typical

    def slow(self, seconds: float) -> bool:
        """Are this answer and the recent ones well above the fastest?"""
        bound = SLOW_FACTOR * (self.fastest or 0.0) + SLOW_SLACK_S
        # Both: the typical ignores a stray slow answer, and this answer's own time keeps the fast
        # answers that follow a back-off from backing off again on the typical's memory.
        return seconds > bound and self.typical > bound

    def queued(self, flight: int) -> float:
        """How many of ``flight`` requests in flight wait in the system's queue, by Little's law."""
        typical, fastest = self.typical, self.fastest or 0.0
        return max(0.0, flight * (1 - (fastest + QUEUE_SLACK_S) / typical)) if typical else 0.0


class Pace:
    """How hard to press one system now: from a gentle start up to, never above, the declared ceilings.

    ``back_off`` halves the rate and the concurrency; only a request sent in the current
    ``round`` (each back-off starts a new one) may do it, so a burst of refusals to requests
    sent at one pace counts once. Good answers move the concurrency by latency (see the module)
    and raise the rate: doubling it below its *mark* (the ceiling, until a 429 sets it just
    under what the system accepted), ``PROBE`` of the mark per second above it.
    """

    def __init__(
        self, politeness: Politeness, *, floor_rate: float = RATE_FLOOR, floor_concurrency: int = 1
    ) -> None:
        self.ceiling_rate = politeness.rate
        self.ceiling_concurrency = politeness.concurrency
        self.floor_rate = min(floor_rate, politeness.rate)
        self.floor_concurrency = min(floor_concurrency, politeness.concurrency)
        # One request in flight is the gentle start: a rate below the ceiling on top of it would only
        # stretch a short list's few pages, each already waiting for the answer before it.
        self.rate = self.ceiling_rate
        self.round = 0
        self._window = float(self.floor_concurrency)
        self._rate_mark = self.ceiling_rate  # below it the rate doubles, above it it probes
        self._window_mark = float(self.ceiling_concurrency)  # below it the window doubles, above it +1
        # A rendered page takes longer than a raw fetch from the same system: each kind of answer
        # is timed against its own kind, or a walk that starts rendering would read as a system slowing.
        self._latency: dict[str, Latency] = {}

    @property
    def concurrency(self) -> int:
        """Requests allowed in flight now."""
        return max(self.floor_concurrency, int(self._window))

    def answered(
        self, sent_in: int, seconds: float, kind: str = "", *, flight: int | None = None, held: bool = True
    ) -> bool:
        """A good answer after ``seconds``; True if it was slow enough to back off (it did).

        ``flight``: requests of ours in flight when it was sent, itself included (default: a full
        window); only an answer sent with the window full may widen it, and one sent alone sets the
        system's own speed (see ``Latency.took``). ``held``: it waited for its turn at the rate,
        so the rate was what held us back and only then may it rise.
        """
        latency = self._latency.setdefault(kind, Latency())
        latency.took(seconds, alone=flight == 1)
        flight = self.concurrency if flight is None else flight
        if latency.slow(seconds):
            return self.back_off(sent_in)
        queued = latency.queued(flight)
        if queued >= QUEUE_LOW:  # the system started queueing ours: the window's slow start is over
            self._window_mark = min(self._window_mark, self._window)
        if queued > QUEUE_HIGH:
            self._window = max(float(self.floor_concurrency), self._window - 1 / self._window)
        elif queued < QUEUE_LOW:
            if flight >= self.concurrency:
                step = 1 if self._window < self._window_mark else 1 / self._window
                self._window = min(float(self.ceiling_concurrency), self._window + step)
            if held:
                self._climb()
        return False

    def _climb(self) -> None:
        if self.rate < self._rate_mark:
            self.rate = min(self._rate_mark, self.rate * SLOW_START)
        else:
            self.rate = min(self.ceiling_rate, self.rate + PROBE * self._rate_mark / self.rate)

    def back_off(self, sent_in: int, served: float | None = None, *, refused: bool = False) -> bool:
        """The system pushed back at a request sent in round ``sent_in``; True if the pace went down.

        ``served``: the requests it answered well in the second before, when known. Halving what it
        took rather than what we asked for reaches a limit far below our ceiling in one refusal, not
        one refusal per halving. ``refused``: it said we asked too often (429): what it took is its
        limit, and the rate climbs back fast only to just under it.
        """
        if sent_in != self.round:
            return False  # sent before the latest back-off: already answered for
        # Counted in whole requests, what it took reads one short when our sends reached it bunched:
        # within one of our rate, it took our rate.
        took = served if served and served + 1 < self.rate else self.rate
        rate = max(self.floor_rate, took * DECREASE)
        window = max(float(self.floor_concurrency), self._window * DECREASE)
        if refused:
            self._rate_mark = max(rate, took * MARK_SHARE)
        self._window_mark = window
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
        # When the latest well-answered requests were sent; more than a second's worth is never needed.
        self._served: deque[float] = deque(maxlen=math.ceil(politeness.rate) + 1)
        self._freed = asyncio.Event()
        self._next_start = 0.0
        self._pauses = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the system's request slots, started no sooner than the rate allows.

        For a request sent by hand (a click): a body that returns counts as a good answer.
        """
        async with self._slot() as held:
            sent_in = self.pace.round
            sent, flight = self._sent()
            try:
                yield
            finally:
                self._sending -= 1
            self._good(sent_in, sent, "slot", flight, held)

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[bool]:
        """A slot; yields whether the rate (or a pause) held it back."""
        while self._in_flight >= self.pace.concurrency:  # the pace may lower it while we wait
            self._freed.clear()
            await self._freed.wait()
        self._in_flight += 1
        try:
            yield await self._turn()
        finally:
            self._in_flight -= 1
            self._freed.set()

    async def _turn(self) -> bool:
        """Wait for a start time at the current rate; a pause declared meanwhile sends us to the back."""
        loop = asyncio.get_running_loop()
        while True:
            pauses, now = self._pauses, loop.time()
            start = max(now, self._next_start)
            self._next_start = start + 1.0 / self.pace.rate
            if start <= now:
                return False
            await asyncio.sleep(start - now)
            if pauses == self._pauses:
                return True

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
            status = 0
            async with self._slot() as held:
                sent_in = self.pace.round
                sent, flight = self._sent()
                try:
                    reply = await call()
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
                finally:
                    self._sending -= 1
                if status and status != 429 and status < 500:
                    self._good(sent_in, sent, type(reply).__name__, flight, held)
                    return reply
                if self.pace.back_off(sent_in, self._served_before(sent), refused=status == 429):
                    self._slowed(problem)
            logger.debug("{} failed ({}); retry {} in {:.1f}s", what, problem, attempt + 1, wait)
            await asyncio.sleep(wait)
        raise SystemUnavailable(
            f"{self.name or '系统'} 在重试 {self.politeness.retries} 次后仍未应答 {what}（{problem}）："
            "系统可能暂时不可用，稍后会自动重试"
        )

    def _sent(self) -> tuple[float, int]:
        """A request leaves now: when, and how many of ours are in flight with it."""
        self._sending += 1
        return asyncio.get_running_loop().time(), self._sending

    def _good(self, sent_in: int, sent: float, kind: str, flight: int, held: bool) -> None:
        """A request sent at ``sent`` was answered well: the pace learns from it."""
        self._served.append(sent)
        seconds = asyncio.get_running_loop().time() - sent
        if self.pace.answered(sent_in, seconds, kind, flight=flight, held=held):
            self._slowed(f"应答变慢，{seconds:.2f} 秒")

    def _served_before(self, sent: float) -> int:
        """Requests answered well that were sent in the second before ``sent``: what the system took."""
        return sum(1 for then in self._served if sent - 1.0 < then <= sent)

    def _slowed(self, why: str) -> None:
        pace = self.pace
        logger.info(
            "{} 退让（{}）：降到每秒 {:.2f} 个请求、同时 {} 个，应答正常后逐步回升，至多每秒 {:g} 个、{} 个",
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
