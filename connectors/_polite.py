"""Polite fetching: a per-system cap on requests in flight and on their rate, and retries.

Every request a robot makes (page loads, list pages fetched without rendering, API calls,
downloads) passes one ``Polite`` gate per system, retries included, so a system that is
struggling sees fewer requests from us, never more.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from loguru import logger
from playwright.async_api import Error as PlaywrightError

from connectors._errors import SystemUnavailable
from connectors._system import Politeness

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0


class Reply(Protocol):
    """What both a page navigation and an API response tell us."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> dict[str, str]: ...


R = TypeVar("R", bound=Reply | None)


class Polite:
    """The gate of one system in this process: at most ``concurrency`` in flight, ``rate`` per second."""

    def __init__(self, politeness: Politeness, *, name: str = "") -> None:
        self.politeness = politeness
        self.name = name
        self._slots = asyncio.Semaphore(politeness.concurrency)
        self._interval = 1.0 / politeness.rate
        self._next_start = 0.0
        self._clock = asyncio.Lock()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the system's request slots, started no sooner than the rate allows."""
        async with self._slots:
            loop = asyncio.get_running_loop()
            async with self._clock:
                now = loop.time()
                start = max(now, self._next_start)
                self._next_start = start + self._interval
            if start > now:
                await asyncio.sleep(start - now)
            yield

    def pause(self, seconds: float) -> None:
        """Start nothing for ``seconds`` (the system said 429 Retry-After): every request waits."""
        now = asyncio.get_running_loop().time()
        self._next_start = max(self._next_start, now + seconds)

    async def fetch(self, call: Callable[[], Awaitable[R]], what: str) -> R:
        """``call()`` inside a slot, retried on 5xx, 429, timeouts and dropped connections.

        Raises ``SystemUnavailable`` after the declared number of retries.
        """
        problem = ""
        for attempt in range(self.politeness.retries + 1):
            wait = backoff(attempt)
            async with self.slot():
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
                    else:
                        return reply
            logger.debug("{} failed ({}); retry {} in {:.1f}s", what, problem, attempt + 1, wait)
            await asyncio.sleep(wait)
        raise SystemUnavailable(
            f"{self.name or 'the system'} did not answer {what} after {self.politeness.retries} retries "
            f"({problem}); it may be down: the run will be tried again later"
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
