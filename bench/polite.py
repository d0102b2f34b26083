"""The adaptive pace against the best fixed one, on a system that slows down and one that refuses.

    .venv/bin/python bench/polite.py [--quick] [--requests 300] [--cell 100] [--only slow|refusing]

Two sandbox systems (人口管理系统 with its traffic switches), each sent ``--requests`` GETs at
once through one ``Polite`` gate with Playwright's request API, as a walk fetching ahead does:

- **slow**: serves ``--at-once`` requests at a time (3), ``--work`` seconds each (0.2), the rest
  wait in its queue: more in flight only adds latency;
- **refusing**: fast, but answers 429 (Retry-After: 1) above ``--limit`` requests a second (5).

In each, a sweep of fixed paces (a concurrency × rate grid, each pinned: floors = ceilings,
``--cell`` GETs each; a fixed pace needs no warm-up) finds the best fixed throughput; then the
adaptive gate **with no politeness declared** (``Politeness()``, its defaults) sends ``--requests``.
Printed per variant: good answers/s, the share of requests the system refused (429s / all we
sent), the p50/p95 latency of every request sent, the most requests the system held at once; and
the ratio adaptive / best fixed. Issue 15 asks for ≥ 0.8× with < 5% refused, in both.
``--quick`` is a short run to see it work (a small grid, 40 GETs a cell, 150 adaptive).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger
from playwright.async_api import APIRequestContext, APIResponse, async_playwright

from connectors import Pace, Polite, Politeness
from sandbox import Sandbox, SandboxSystem, generate_world

PATH = "/login"  # a page any client may GET: the system's own work is what the switches add
WINDOW_S = 1.1  # the refusing system's window (one second) forgets the previous variant


@dataclass(frozen=True)
class Outcome:
    label: str
    answered: int
    sent: int  # retries included
    refused: int
    seconds: float
    latencies: list[float]
    most_at_once: int

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds

    @property
    def share(self) -> float:
        return self.refused / self.sent if self.sent else 0.0

    def row(self) -> str:
        p50, p95 = statistics.median(self.latencies), statistics.quantiles(self.latencies, n=20)[-1]
        return (
            f"{self.label:<24} {self.answered:>6} {self.sent:>6} {self.share:>8.1%} {self.per_second:>9.2f}"
            f" {p50:>7.3f} {p95:>7.3f} {self.most_at_once:>8}"
        )


HEADS = (
    f"{'variant':<24} {'asked':>6} {'sent':>6} {'refused':>8} {'good/s':>9}"
    f" {'p50 s':>7} {'p95 s':>7} {'at once':>8}"
)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    switch: Callable[[SandboxSystem], None]
    concurrencies: tuple[int, ...]
    rates: tuple[float, ...]


def fixed(concurrency: int, rate: float) -> Polite:
    """A pace that never moves: its floors are its ceilings (Retry-After still honoured)."""
    declared = Politeness(concurrency=concurrency, rate=rate, retries=30)
    return Polite(declared, name="bench", pace=Pace(declared, floor_rate=rate, floor_concurrency=concurrency))


async def run(
    polite: Polite, label: str, system: SandboxSystem, client: APIRequestContext, count: int
) -> Outcome:
    """``count`` GETs at once through ``polite``; every request sent, retries included, and its answer."""
    latencies: list[float] = []
    statuses: list[int] = []
    url = system.url + PATH

    async def get() -> APIResponse:
        sent = time.perf_counter()
        reply = await client.get(url)
        latencies.append(time.perf_counter() - sent)
        statuses.append(reply.status)
        return reply

    system.traffic.reset()
    started = time.perf_counter()
    await asyncio.gather(*(polite.fetch(get, "a page") for _ in range(count)))
    seconds = time.perf_counter() - started
    return Outcome(
        label, count, len(statuses), statuses.count(429), seconds, latencies, system.traffic.max_in_flight
    )


async def scenario(case: Scenario, system: SandboxSystem, args: argparse.Namespace) -> None:
    system.reset()
    case.switch(system)
    print(f"\n{case.title}\n{HEADS}")
    async with async_playwright() as playwright:
        client = await playwright.request.new_context()
        try:
            best: Outcome | None = None
            for concurrency, rate in itertools.product(case.concurrencies, case.rates):
                await asyncio.sleep(WINDOW_S)
                outcome = await run(
                    fixed(concurrency, rate), f"fixed {concurrency} × {rate:g}/s", system, client, args.cell
                )
                print(outcome.row(), flush=True)
                if best is None or outcome.per_second > best.per_second:
                    best = outcome
            await asyncio.sleep(WINDOW_S)
            adaptive = await run(
                Polite(Politeness(), name="bench"), "adaptive (defaults)", system, client, args.requests
            )
        finally:
            await client.dispose()
    assert best is not None
    print(adaptive.row())
    print(
        f"best fixed: {best.label} at {best.per_second:.2f}/s; adaptive {adaptive.per_second:.2f}/s = "
        f"{adaptive.per_second / best.per_second:.2f}× of it, {adaptive.share:.1%} refused"
    )


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    def slow(system: SandboxSystem) -> None:
        system.switches.serve_at_once, system.switches.work_seconds = args.at_once, args.work

    def refusing(system: SandboxSystem) -> None:
        system.switches.rate_limit_per_s = args.limit

    quick = args.quick
    return [
        Scenario(
            "slow",
            f"(a) slow: serves {args.at_once} at a time, {args.work:g} s each, the rest queue "
            f"(at most {args.at_once / args.work:g}/s)",
            slow,
            (2, 3, 6) if quick else (1, 2, 3, 4, 6, 8),
            (20, 50) if quick else (10, 20, 50),
        ),
        Scenario(
            "refusing",
            f"(b) refusing: 429 with Retry-After above {args.limit:g} requests/s",
            refusing,
            (1,) if quick else (1, 4),
            (4.5, 4.8, 5, 6) if quick else (3, 4, 4.5, 4.8, 5, 6, 10),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small grid and short runs")
    parser.add_argument("--requests", type=int, help="GETs the adaptive gate sends (300; 150 quick)")
    parser.add_argument("--cell", type=int, help="GETs each fixed pace of the sweep sends (100; 40 quick)")
    parser.add_argument("--only", choices=("slow", "refusing"))
    parser.add_argument("--at-once", type=int, default=3, help="requests the slow system serves at once")
    parser.add_argument("--work", type=float, default=0.2, help="seconds the slow system spends on each")
    parser.add_argument(
        "--limit", type=float, default=5.0, help="the refusing system's requests/s before 429"
    )
    args = parser.parse_args()
    args.requests = args.requests or (150 if args.quick else 300)
    args.cell = args.cell or (40 if args.quick else 100)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with Sandbox(generate_world(seed=7, persons=100, communities=1)) as box:
        for case in scenarios(args):
            if args.only in (None, case.name):
                asyncio.run(scenario(case, box["population"], args))


if __name__ == "__main__":
    main()
