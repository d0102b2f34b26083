"""A system that pushes back gets fewer requests: AIMD between a floor and the declared ceilings.

How a new pace finds a system's pace from below is in ``test_polite_adaptive.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

import pytest
from playwright.async_api import async_playwright

from connectors import Credentials, Polite, Politeness, Session, SolverChain, launch_browser
from connectors._polite import MARK_SHARE, PROBE, RATE_FLOOR, Pace
from connectors.sandbox import population
from robots.runtime import run_blocking
from sandbox import Sandbox
from settings import load_settings
from vault import Secret

DECLARED = Politeness(concurrency=4, rate=20, retries=10)
FAST = 0.01  # seconds: a good answer of a quick local system


@dataclass(frozen=True)
class Answer:
    """What a fetch tells the gate: a status and headers, as a real reply does."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def at_ceiling(pace: Pace) -> Pace:
    """A pace that good answers have brought up to its ceilings (a new one starts low)."""
    for _ in range(100):
        pace.answered(pace.round, FAST)
    assert (pace.rate, pace.concurrency) == (pace.ceiling_rate, pace.ceiling_concurrency)
    return pace


def backed_off(pace: Pace, times: int) -> Pace:
    for _ in range(times):
        assert pace.back_off(pace.round)
    return pace


def test_pushback_halves_rate_and_concurrency_down_to_a_floor_that_keeps_progress() -> None:
    pace = at_ceiling(Pace(DECLARED))

    assert pace.back_off(pace.round)
    assert (pace.rate, pace.concurrency) == (10, 2)
    assert pace.back_off(pace.round)
    assert (pace.rate, pace.concurrency) == (5, 1)

    while pace.back_off(pace.round):
        pass
    assert (pace.rate, pace.concurrency) == (RATE_FLOOR, 1)
    assert not pace.back_off(pace.round), "below the floor"


def test_refusals_of_requests_sent_at_one_pace_back_off_once() -> None:
    pace = at_ceiling(Pace(DECLARED))
    sent_in = pace.round  # four requests in flight, all refused
    assert [pace.back_off(sent_in) for _ in range(4)] == [True, False, False, False]
    assert pace.rate == 10
    assert pace.back_off(pace.round), "a request sent at the new pace may lower it again"
    assert pace.rate == 5


def test_a_back_off_halves_what_the_system_took_when_that_is_known() -> None:
    pace = at_ceiling(Pace(DECLARED))
    assert pace.back_off(pace.round, served=5)  # we asked for 20/s, it answered 5 in the last second
    assert (pace.rate, pace.concurrency) == (2.5, 2)
    assert pace.back_off(pace.round, served=0)  # nothing answered well: halve what we asked for
    assert pace.rate == 1.25


def test_after_a_429_the_rate_is_back_just_under_what_was_taken_then_probes_slowly_to_the_ceiling() -> None:
    pace = at_ceiling(Pace(DECLARED))
    assert pace.back_off(pace.round, served=5, refused=True)  # 20/s asked, 5 taken: its limit
    assert pace.rate == 2.5
    pace.answered(pace.round, FAST)  # the first good answer after the Retry-After pause
    assert pace.rate == 5 * MARK_SHARE
    climbed = []
    for _second in range(4):  # each second at the current rate brings that many answers
        before = pace.rate
        for _ in range(round(pace.rate)):
            assert not pace.answered(pace.round, FAST)
        climbed.append(pace.rate - before)
    step = PROBE * 5 * MARK_SHARE
    assert all(0.6 * step < climb < 1.6 * step for climb in climbed), climbed

    for _ in range(20_000):
        pace.answered(pace.round, FAST)
        assert pace.rate <= DECLARED.rate and pace.concurrency <= DECLARED.concurrency
    assert (pace.rate, pace.concurrency) == (DECLARED.rate, DECLARED.concurrency)


def test_after_other_pushback_the_rate_climbs_fast_back_to_where_it_was() -> None:
    pace = backed_off(at_ceiling(Pace(DECLARED)), 2)  # a 5xx says nothing about how often we may ask
    assert pace.rate == 5
    pace.answered(pace.round, FAST)
    pace.answered(pace.round, FAST)
    assert pace.rate == DECLARED.rate


def test_concurrency_comes_back_one_request_per_window_of_good_answers() -> None:
    pace = backed_off(at_ceiling(Pace(DECLARED)), 2)
    assert pace.concurrency == 1
    seen = [pace.concurrency]
    for _ in range(20):
        pace.answered(pace.round, FAST)
        seen.append(pace.concurrency)
    assert seen == sorted(seen) and set(seen) == {1, 2, 3, 4}
    assert seen.index(3) - seen.index(2) >= 2 and seen.index(4) - seen.index(3) >= 3, seen


def test_answers_growing_slow_back_off_and_stray_slow_ones_do_not() -> None:
    pace = at_ceiling(Pace(DECLARED))
    assert not pace.answered(pace.round, 2.0), "one slow answer among fast ones is not a trend"
    assert not pace.answered(pace.round, FAST)
    assert pace.rate == DECLARED.rate

    slowed = [pace.answered(pace.round, 0.5) for _ in range(5)]
    assert slowed.count(True) >= 1 and pace.rate < DECLARED.rate and pace.concurrency < DECLARED.concurrency
    assert not pace.answered(pace.round, FAST), "a fast answer after the back-off does not back off again"


def test_each_kind_of_answer_is_timed_against_its_own_kind() -> None:
    pace = at_ceiling(Pace(DECLARED))
    for _ in range(50):  # a rendered page always takes longer than a raw fetch: neither is a slowdown
        assert not pace.answered(pace.round, FAST, "APIResponse")
        assert not pace.answered(pace.round, 0.6, "Response")
    assert pace.rate == DECLARED.rate


def test_a_system_slow_even_to_one_request_at_a_time_is_taken_as_it_is() -> None:
    pace = at_ceiling(Pace(DECLARED))
    for _ in range(10):  # slower with four in flight: is it us?
        pace.answered(pace.round, 0.5)
    assert pace.concurrency == 1
    for _ in range(5):  # no: one at a time it is as slow, so that is its speed now
        assert not pace.answered(pace.round, 0.5, flight=1)
    for _ in range(2_000):
        assert not pace.answered(pace.round, 0.5)
    assert (pace.rate, pace.concurrency) == (DECLARED.rate, DECLARED.concurrency)


def test_the_gate_holds_to_the_lowered_concurrency_and_wins_it_back_within_the_ceiling() -> None:
    async def go() -> list[tuple[int, int]]:
        polite = Polite(dataclasses.replace(DECLARED, rate=10_000), name="t")
        backed_off(at_ceiling(polite.pace), 2)
        in_flight, seen = 0, []

        async def call() -> Answer:
            nonlocal in_flight
            in_flight += 1
            seen.append((in_flight, polite.pace.concurrency))
            await asyncio.sleep(0.05)  # long beside the gap the rate leaves between starts
            in_flight -= 1
            return Answer()

        await asyncio.gather(*(polite.fetch(call, "a page") for _ in range(60)))
        return seen

    seen = run_blocking(go)
    assert seen[0] == (1, 1), "backed off to one at a time"
    assert all(in_flight <= allowed for in_flight, allowed in seen), seen
    assert max(in_flight for in_flight, _ in seen) == DECLARED.concurrency, "won back, and no more"


def test_429s_and_5xx_through_the_gate_slow_it_and_are_still_retried() -> None:
    async def go() -> Pace:
        polite = Polite(DECLARED, name="t")
        answers = iter([Answer(429, {"retry-after": "0"}), Answer(503), Answer(200)])
        reply = await polite.fetch(lambda: asyncio.sleep(0, next(answers)), "a page")
        assert reply.status == 200
        return polite.pace

    pace = run_blocking(go)
    assert pace.round == 2, "the 429 and the 503 each backed off"
    # The good answer may win some back at once, but a 429 holds the rate under what was taken.
    assert pace.rate <= DECLARED.rate * MARK_SHARE


@pytest.mark.browser
def test_a_rate_limited_system_refuses_few_requests_once_the_gate_backs_off(sandbox: Sandbox) -> None:
    system = sandbox["population"]
    system.switches.rate_limit_per_s = 5  # a quarter of what the robot declares
    account = system.account("donghu")
    declared = dataclasses.replace(population, base_url=system.url, politeness=DECLARED)
    polite = Polite(declared.politeness, name=declared.name)

    async def go() -> None:
        async with async_playwright() as playwright:
            browser = await launch_browser(playwright, load_settings())
            session = Session(
                browser,
                declared,
                lambda: Credentials(account.username, Secret("password", account.password)),
                polite=polite,
                solver=SolverChain(),
            )
            try:
                await session.open()
                pages = [session.fetch(f"/persons?size=10&page={n % 30 + 1}") for n in range(60)]
                assert all(reply.status == 200 for reply in await asyncio.gather(*pages))
            finally:
                await session.close()
                await browser.close()

    run_blocking(go)
    statuses = [r.status for r in system.traffic.requests]
    refused = statuses.count(429) / len(statuses)
    assert len(statuses) >= 60 and refused < 0.15, f"{statuses.count(429)} of {len(statuses)} refused"
    # Honouring Retry-After alone refuses about as many; the gate itself slowed down:
    assert polite.pace.rate < DECLARED.rate / 2


def test_a_503_that_says_how_long_it_is_down_is_waited_for_by_every_request() -> None:
    async def go() -> tuple[float, float]:
        polite = Polite(DECLARED, name="t", pace=at_ceiling(Pace(DECLARED)))
        loop = asyncio.get_running_loop()
        down = iter([Answer(503, {"retry-after": "0.5"}), Answer(200)])
        first = asyncio.ensure_future(polite.fetch(lambda: asyncio.sleep(0, next(down)), "a page"))
        await asyncio.sleep(0.05)  # the 503 has come back
        asked = loop.time()

        async def another() -> Answer:
            served.append(loop.time())
            return Answer(200)

        served: list[float] = []
        await polite.fetch(another, "another page")
        await first
        return asked, served[0]

    asked, served = run_blocking(go)
    # A lower bound on the gate's own clock: the other request was held by the pause the header set,
    # where the pace alone (halved to 10/s) would have sent it within 0.1 s.
    assert served - asked >= 0.3
