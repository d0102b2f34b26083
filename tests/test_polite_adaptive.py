"""The declared pace is a ceiling: a new gate starts gently and finds the system's own pace below it.

Real sandbox systems on 127.0.0.1, real GETs through the ``Polite`` gate with Playwright's
request API, and what the system itself saw of them (its traffic log): no clocks are asserted.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator

import pytest
from playwright.async_api import APIResponse, async_playwright

from connectors import Polite, Politeness
from robots.runtime import run_blocking
from sandbox import Sandbox, SandboxSystem
from sandbox._traffic import RequestRecord

PATH = "/login"  # any client may GET it


def gets(system: SandboxSystem, polite: Polite, count: int) -> list[tuple[float, int]]:
    """``count`` GETs at once through ``polite``, as a walk fetching ahead sends them; the pace at each."""

    async def go() -> list[tuple[float, int]]:
        paces: list[tuple[float, int]] = []
        async with async_playwright() as playwright:
            client = await playwright.request.new_context()

            async def get() -> APIResponse:
                paces.append((polite.pace.rate, polite.pace.concurrency))
                return await client.get(system.url + PATH)

            try:
                replies = await asyncio.gather(*(polite.fetch(get, "a page") for _ in range(count)))
            finally:
                await client.dispose()
        assert all(reply.status == 200 for reply in replies)
        return paces

    system.traffic.reset()
    return run_blocking(go)


def served(system: SandboxSystem) -> list[RequestRecord]:
    return sorted((r for r in system.traffic.requests if r.path == PATH), key=lambda r: r.started)


def at_once(records: list[RequestRecord], among: list[RequestRecord]) -> Iterator[int]:
    """For each of ``records``: how many of ``among`` the system held when it arrived, itself included."""
    for record in records:
        yield sum(1 for other in among if other.started <= record.started < other.ended)


def test_a_new_pace_starts_one_at_a_time_and_grows_to_its_ceilings_never_above(sandbox: Sandbox) -> None:
    system = sandbox["population"]
    system.switches.work_seconds = 0.15  # slow enough that 4 in flight are needed for 20/s, and never queued
    declared = Politeness(concurrency=4, rate=20)

    paces = gets(system, Polite(declared, name="t"), 100)

    assert paces[0] == (declared.rate, 1), "a new pace starts with one request in flight"
    first, second = served(system)[:2]
    assert second.started >= first.ended, "the second request waited for the first one's good answer"
    assert max(paces) == (declared.rate, declared.concurrency), "grown to the ceilings"
    records = served(system)
    assert max(at_once(records, records)) == declared.concurrency, "reached, and never more in flight"
    for record in records:  # never more started in any second than the declared rate
        assert sum(1 for other in records if record.started <= other.started < record.started + 1) <= 20 + 1


def test_on_a_system_serving_three_at_once_the_pace_keeps_near_three_in_flight(sandbox: Sandbox) -> None:
    system = sandbox["population"]
    system.switches.serve_at_once, system.switches.work_seconds = 3, 0.1  # the rest wait in its queue

    gets(system, Polite(Politeness(), name="t"), 240)  # no politeness declared: up to 8 in flight

    records = served(system)
    warmed = records[80:]  # the slow start overshoots, then steps back
    held = list(at_once(warmed, records))
    assert 3 <= max(held) <= 3 + 2, f"held {max(held)} of ours at once; it serves 3"
    assert statistics.median(held) >= 3, "and its workers are kept busy"


def test_under_a_429_limit_the_pace_settles_just_under_it_with_few_refused(sandbox: Sandbox) -> None:
    system = sandbox["population"]
    system.switches.rate_limit_per_s = 5

    paces = gets(system, Polite(Politeness(), name="t"), 120)  # no politeness declared: up to 50/s

    statuses = [r.status for r in served(system)]
    refused = statuses.count(429)
    assert refused / len(statuses) < 0.05, f"{refused} of {len(statuses)} refused"
    settled = [rate for rate, _ in paces[len(paces) // 2 :]]
    assert 4.0 <= statistics.median(settled) <= 5.0 and max(settled) < 5.5, settled
    # A refusal costs its Retry-After pause, not seconds of climbing back from half the limit:
    assert sum(rate < 0.75 * 5 for rate in settled) < 0.15 * len(settled), settled


@pytest.mark.parametrize("declared", [Politeness(concurrency=2, rate=3), Politeness(concurrency=1, rate=900)])
def test_a_pace_never_starts_above_what_was_declared(declared: Politeness) -> None:
    pace = Polite(declared).pace
    assert (pace.rate, pace.concurrency) == (declared.rate, 1)
