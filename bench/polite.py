"""Politeness under pushback: a real walk against a sandbox system that refuses more than it allows.

    .venv/bin/python bench/polite.py [--persons 1000] [--size 10] [--limit 5] [--rate 20] [--concurrency 4]

The sandbox's 人口管理系统 answers 429 (with Retry-After) to a client that starts more than
``--limit`` requests in a second. A robot declares far more (``--rate``, ``--concurrency``)
and walks every person of a one-community world through a real logged-in ``Session``, ``--size``
persons to a list page, on the fast path. Printed: every request the system saw, the share it
refused (429s / all), the rate it accepted, the walk's time and records.

``--slow`` (``--requests 300``, ``--work 0.1``) is a system that never refuses but grows slow: it
serves one request at a time, ``--work`` seconds each (at most ``1/work`` a second), and the rest
wait in its queue. The same declared pace sends ``--requests`` GETs through the gate with
Playwright's request API. Printed: the rate served, the median and p95 latency the robot saw, and
the longest queue the system held.

Each scenario runs the gate as it is (adaptive) and with a pace that never moves (its floor set to
the declared ceilings: the declared rate and concurrency throughout, Retry-After still honoured).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from loguru import logger
from playwright.async_api import APIRequestContext, APIResponse, async_playwright
from starlette.types import Receive, Scope, Send

from connectors import Credentials, Pace, Polite, Politeness, Session, SolverChain, System, launch_browser
from connectors.sandbox import population
from robots import Walk
from robots.sandbox_population import PAGER, Person
from sandbox import Sandbox, SandboxSystem, generate_world
from settings import load_settings
from vault import Secret


@dataclass(frozen=True)
class Outcome:
    label: str
    records: int
    requests: int
    refused: int
    seconds: float

    @property
    def share(self) -> float:
        return self.refused / self.requests if self.requests else 0.0

    @property
    def accepted_rate(self) -> float:
        return (self.requests - self.refused) / self.seconds if self.seconds else 0.0


async def walk_all(
    sandboxed: SandboxSystem, system: System, polite: Polite, size: int, label: str
) -> Outcome:
    """Log in, then read every list page of the persons through ``polite``; count what the system saw."""
    account = sandboxed.accounts[0]
    async with async_playwright() as playwright:
        browser = await launch_browser(playwright, load_settings())
        session = Session(
            browser,
            system,
            lambda: Credentials(account.username, Secret("password", account.password)),
            polite=polite,
            solver=SolverChain(),
        )
        try:
            await session.open()
            walk = Walk(
                session,
                run_id=uuid.uuid4().hex,
                account="bench",
                scope=account.scope,
                settings=load_settings(),
            )
            records = 0
            started = time.perf_counter()
            async for page in walk.pages(f"/persons?size={size}&page={{n}}", last=PAGER):
                records += len(page.table("table.persons", Person))
            seconds = time.perf_counter() - started
        finally:
            await session.close()
            await browser.close()
    statuses = [r.status for r in sandboxed.traffic.requests]
    return Outcome(label, records, len(statuses), statuses.count(429), seconds)


def report(outcomes: list[Outcome], limit: float) -> None:
    print(f"\nsystem limit {limit:g} requests/s per client")
    heads = ("records", 8), ("requests", 9), ("429s", 6), ("refused", 8), ("accepted/s", 11), ("walk s", 8)
    print(f"{'variant':<28}" + "".join(f" {head:>{width}}" for head, width in heads))
    for o in outcomes:
        print(
            f"{o.label:<28} {o.records:>8,} {o.requests:>9,} {o.refused:>6,} {o.share:>8.1%} "
            f"{o.accepted_rate:>11.2f} {o.seconds:>8.1f}"
        )


VARIANTS: dict[str, Callable[[Politeness], Polite]] = {
    "adaptive (AIMD)": lambda p: Polite(p, name="bench"),
    # A pace whose floor is its ceiling never moves: the gate as it was before AIMD.
    "fixed (declared pace)": lambda p: Polite(
        p, name="bench", pace=Pace(p, floor_rate=p.rate, floor_concurrency=p.concurrency)
    ),
}


async def rate_limited(args: argparse.Namespace, declared: Politeness) -> None:
    world = generate_world(seed=7, persons=args.persons, communities=1)
    with Sandbox(world) as box:
        sandboxed = box["population"]
        system = dataclasses.replace(population, base_url=sandboxed.url, politeness=declared)
        outcomes = []
        for label, make in VARIANTS.items():
            sandboxed.reset()
            sandboxed.switches.rate_limit_per_s = args.limit
            outcomes.append(await walk_all(sandboxed, system, make(declared), args.size, label))
    report(outcomes, args.limit)


class OneWorker:
    """An ASGI system that serves one request at a time, ``work`` seconds each; the others queue."""

    def __init__(self, work: float) -> None:
        self.work = work
        self.waiting = self.most_waiting = 0
        self._worker = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        async with self._worker:
            self.waiting -= 1
            await asyncio.sleep(self.work)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})


def serve(app: OneWorker) -> tuple[str, uvicorn.Server]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/", server


async def growing_slow(args: argparse.Namespace, declared: Politeness) -> None:
    print(f"\na system serving one request at a time, {args.work:g} s each (at most {1 / args.work:g}/s)")
    heads = ("requests", 9), ("served/s", 9), ("p50 s", 7), ("p95 s", 7), ("most queued", 12)
    print(f"{'variant':<28}" + "".join(f" {head:>{width}}" for head, width in heads))
    async with async_playwright() as playwright:
        for label, make in VARIANTS.items():
            app = OneWorker(args.work)
            url, server = serve(app)
            client = await playwright.request.new_context()
            try:
                seconds, latencies = await timed_gets(make(declared), client, url, args.requests)
            finally:
                await client.dispose()
                server.should_exit = True
            p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[-1]
            print(
                f"{label:<28} {args.requests:>9,} {args.requests / seconds:>9.2f} {p50:>7.2f} {p95:>7.2f} "
                f"{app.most_waiting:>12}"
            )


async def timed_gets(
    polite: Polite, client: APIRequestContext, url: str, count: int
) -> tuple[float, list[float]]:
    """``count`` GETs of ``url`` at once through ``polite``: the seconds they took, and each one's latency."""
    latencies = []

    async def get() -> APIResponse:
        sent = time.perf_counter()
        reply = await client.get(url)
        latencies.append(time.perf_counter() - sent)
        return reply

    started = time.perf_counter()
    await asyncio.gather(*(polite.fetch(get, "a page") for _ in range(count)))
    return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10, choices=(10, 20, 50, 100))
    parser.add_argument("--limit", type=float, default=5.0, help="the system's requests/s before 429")
    parser.add_argument("--rate", type=float, default=20.0, help="the robot's declared requests/s")
    parser.add_argument("--concurrency", type=int, default=4, help="the robot's declared requests in flight")
    parser.add_argument("--slow", action="store_true", help="a system growing slow instead of refusing")
    parser.add_argument("--requests", type=int, default=300, help="GETs sent to the slow system")
    parser.add_argument("--work", type=float, default=0.1, help="seconds the slow system spends on a request")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="INFO")
    declared = Politeness(concurrency=args.concurrency, rate=args.rate, retries=10)
    asyncio.run(growing_slow(args, declared) if args.slow else rate_limited(args, declared))


if __name__ == "__main__":
    main()
