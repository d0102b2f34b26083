"""Harvest benchmark: the same persons read four ways from the sandbox's 人口管理系统.

    .venv/bin/python bench/harvest.py [--persons 20000] [--size 100] [--concurrency 4] [--rate 1000]
    .venv/bin/python bench/harvest.py --quick        # 2,000 persons: a smoke run in well under a minute

One account of a one-community world sees every person; each variant reads all of them:

(a) a naive Playwright loop, the way a first RPA script is written: log in through the form,
    ``page.goto`` each list page, and read each cell with its own locator
    (``rows.nth(i).locator("td").nth(j).inner_text()``), one page after another;
(b) our robot in rendered mode (``walk.pages(..., render=True)``);
(c) our robot on the fast path (``walk.pages(..., render=False)``: the logged-in context's request
    API, no rendering, parsed with selectolax);
(d) the baseline: plain ``httpx`` (async, as many requests in flight as the robots' politeness
    allows) with the session cookie of the logged-in context, parsed with the same ``Page.table``.

Every variant uses the same page size. The robots run in the real ``Harvester`` with a fresh data
dir each (so each is a first harvest: its own login, staging and publish); the system's
politeness is replaced by ``--concurrency`` and ``--rate`` (the sandbox declaration's 40/s would
cap every variant at 40 pages/s). "walk" is the time from the first list page to the last record
(for the robots: fetching, parsing, validating and staging); "run" adds the login and, for the
robots, the publish (``RunReport.seconds``). Ratios are of walk records/s.

Peak memory is sampled from /proc every 50 ms during each variant: this process (which also
serves the sandbox) plus every process under it (Playwright's driver and Chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from loguru import logger
from playwright.async_api import async_playwright

from connectors import Politeness, launch_options
from connectors.sandbox import population
from robots import Harvester, Page, RobotSpec, Walk, registered, robot
from robots.sandbox_population import PAGER, PERSON_COLUMNS, Person
from sandbox import DemoAccount, Sandbox, generate_world
from settings import Settings, load_settings
from store import Store, make_engine
from vault import Vault

TABLE = "table.persons"
PAGE_SIZES = (10, 20, 50, 100)  # what the sandbox's pager accepts
QUICK_PERSONS = 2_000
QUICK_NAIVE_PAGES = 1
SAMPLE_S = 0.05


@dataclass
class Result:
    label: str
    records: int
    walk_s: float
    run_s: float
    peak_mib: float = 0.0
    browser_mib: float = 0.0
    ids: set[str] = field(default_factory=set, repr=False)

    @property
    def rate(self) -> float:
        return self.records / self.walk_s if self.walk_s else 0.0


class TreeMemory:
    """Peak RSS of this process and every process under it, sampled in a background thread."""

    def __init__(self, interval: float = SAMPLE_S) -> None:
        self.interval = interval
        self.peak_total = self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @contextmanager
    def phase(self) -> Iterator[TreeMemory]:
        """Peaks from now until the block ends (read them after it)."""
        self.peak_total = self.peak_children = 0
        self.sample()
        yield self
        self.sample()

    def sample(self) -> None:
        own = _rss_kib(os.getpid())
        children = sum(_rss_kib(pid) for pid in _descendants(os.getpid()))
        self.peak_total = max(self.peak_total, own + children)
        self.peak_children = max(self.peak_children, children)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:  # ended meanwhile
        pass
    return 0


def bench_robot(name: str, path: str, *, render: bool, walks: dict[str, float]) -> RobotSpec:
    """A copy of the demo persons robot that also times its own walk."""
    system = population  # replaced by the caller's politeness in main()

    @robot(system=system, record=Person, dataset=name, name=name)
    async def walk_persons(walk: Walk):
        started = time.perf_counter()
        async for page in walk.pages(path, last=PAGER, render=render):
            for row in page.table(TABLE, columns=PERSON_COLUMNS):
                yield row | {"community": walk.scope}
        walks[name] = time.perf_counter() - started

    return registered()[name]


async def naive(
    url: str, username: str, password: str, settings: Settings, size: int, pages: int | None
) -> Result:
    """(a) What a first RPA script does: goto each page, one locator per cell, until a page is empty
    (or, with ``pages``, after that many pages: its rate per record is the same on every page)."""
    ids: set[str] = set()
    records = 0
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**launch_options(settings))
        page = await browser.new_page()
        started = time.perf_counter()
        await page.goto(f"{url}/login")
        await page.fill("#username", username)
        await page.fill("#password", password)
        await page.click("#login-button")
        await page.wait_for_selector("#current-user")
        walk_started = time.perf_counter()
        number = 1
        while pages is None or number <= pages:
            await page.goto(f"{url}/persons?size={size}&page={number}")
            headers = [h.strip() for h in await page.locator(f"{TABLE} thead th").all_inner_texts()]
            where = {field: headers.index(header) for header, field in PERSON_COLUMNS.items()}
            rows = page.locator(f"{TABLE} tbody tr")
            count = await rows.count()
            if count == 0 or await page.locator(f"{TABLE} tbody td.empty").count():
                break
            for i in range(count):
                record = {}
                for name, j in where.items():
                    record[name] = (await rows.nth(i).locator("td").nth(j).inner_text()).strip()
                ids.add(record["id_number"])
                records += 1
            number += 1
        ended = time.perf_counter()
        await browser.close()
    return Result("(a) naive Playwright loop", records, ended - walk_started, ended - started, ids=ids)


async def robot_run(spec: RobotSpec, data_dir: Path, url: str, account: DemoAccount, walks: dict[str, float]):
    """(b) and (c): one run in a Harvester of its own, on a fresh data dir (a first harvest)."""
    settings = load_settings(data_dir=data_dir, system_urls={"population": url})
    vault = Vault.init(settings)
    vault.add(
        "population",
        account.account,
        username=account.username,
        password=account.password,
        scope=account.scope,
    )
    store = Store(make_engine(settings.resolved_database_url))
    async with Harvester(settings, store, vault) as harvester:
        report = await harvester.run(spec, account.account)
    if report.status != "ok":
        raise SystemExit(f"{spec.name} ended {report.status} ({report.kind}): {report.message}")
    return report, walks[spec.name], vault.load_session("population", account.account)


async def plain_http(url: str, cookies: list[dict], path: str, concurrency: int) -> Result:
    """(d) httpx with the logged-in context's cookie, ``concurrency`` requests in flight, same parser."""
    jar = httpx.Cookies()
    for cookie in cookies:
        jar.set(cookie["name"], cookie["value"], domain=cookie["domain"], path=cookie.get("path", "/"))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, cookies=jar, limits=limits, timeout=30) as client:

        async def read(n: int) -> Page:
            async with gate:
                reply = await client.get(path.format(n=n))
            if reply.status_code != 200:
                raise SystemExit(f"plain HTTP: {reply.url} answered {reply.status_code} (logged out?)")
            return Page(reply.text, str(reply.url), n)

        started = time.perf_counter()
        first = await read(1)
        last = max(int(t) for node in first.select(PAGER) if (t := node.text(strip=True)).isdigit())
        ids: set[str] = set()
        records = 0
        for page in [first, *await asyncio.gather(*(read(n) for n in range(2, last + 1)))]:
            for row in page.table(TABLE, columns=PERSON_COLUMNS):
                ids.add(row["id_number"])
                records += 1
        seconds = time.perf_counter() - started
    return Result("(d) plain HTTP (httpx)", records, seconds, seconds, ids=ids)


def ratio(value: float, against: Result | None) -> str:
    return f"{value / against.rate:>9.2f}x" if against is not None and against.rate else f"{'—':>10}"


async def bench(args: argparse.Namespace) -> None:
    world = generate_world(seed=7, persons=args.persons, communities=1)
    path = f"/persons?size={args.size}&page={{n}}"
    walks: dict[str, float] = {}
    system = dataclasses.replace(
        population, politeness=Politeness(concurrency=args.concurrency, rate=args.rate)
    )
    specs = {
        render: dataclasses.replace(
            bench_robot(f"bench_{'rendered' if render else 'fast'}", path, render=render, walks=walks),
            system=system,
        )
        for render in (True, False)
    }
    folder = Path(tempfile.mkdtemp(prefix="bench-harvest-"))
    results: list[Result] = []
    with Sandbox(world) as box, TreeMemory() as memory:
        system_box = box["population"]
        account = system_box.accounts[0]
        truth = set(system_box.truth("persons", account.username)["id_number"])
        print(
            f"{len(truth):,} persons visible to {account.username} · {args.size} to a page · "
            f"concurrency {args.concurrency}, {args.rate:g} requests/s · {os.cpu_count()} CPUs\n"
        )
        url = system_box.url
        settings = load_settings(data_dir=folder / "naive", system_urls={"population": url})
        if not args.no_naive:
            with memory.phase():
                result = await naive(
                    url, account.username, account.password, settings, args.size, args.naive_pages
                )
            results.append(_with_memory(result, memory))
        session = None
        for render, label in ((True, "(b) robot, rendered"), (False, "(c) robot, fast path")):
            data_dir = folder / ("rendered" if render else "fast")
            with memory.phase():
                report, walk_s, session = await robot_run(specs[render], data_dir, url, account, walks)
            results.append(_with_memory(Result(label, report.records, walk_s, report.seconds), memory))
            if report.new != len(truth):
                raise SystemExit(f"{label}: {report.new} new records, expected {len(truth)}")
        assert session is not None
        with memory.phase():
            result = await plain_http(url, session["cookies"], path, args.concurrency)
        results.append(_with_memory(result, memory))
    for result in results:
        whole = len(truth) if args.naive_pages is None or not result.label.startswith("(a)") else None
        if result.ids and (result.ids - truth or len(result.ids) != result.records):
            raise SystemExit(f"{result.label}: read persons it should not see, or some twice")
        if whole is not None and (result.records != whole or (result.ids and result.ids != truth)):
            raise SystemExit(f"{result.label}: read {result.records} rows, expected {whole}")
    report_table(results)
    if args.naive_pages is not None and not args.no_naive:
        print(
            f"(a) read only its first {args.naive_pages} page(s) (--naive-pages): its rate is over those;"
            " every other variant read every person."
        )


def _with_memory(result: Result, memory: TreeMemory) -> Result:
    return dataclasses.replace(
        result, peak_mib=memory.peak_total / 1024, browser_mib=memory.peak_children / 1024
    )


def report_table(results: list[Result]) -> None:
    by = {r.label[:3]: r for r in results}
    naive_r, fast, plain = by.get("(a)"), by["(c)"], by["(d)"]
    print(
        f"{'':26}{'records':>9}{'walk s':>9}{'rec/s':>10}{'run s':>9}{'run rec/s':>11}"
        f"{'vs naive':>10}{'vs HTTP':>10}{'peak MiB':>10}{'chromium':>10}"
    )
    for r in results:
        print(
            f"{r.label:26}{r.records:>9,}{r.walk_s:>9.2f}{r.rate:>10,.0f}{r.run_s:>9.2f}"
            f"{r.records / r.run_s:>11,.0f}{ratio(r.rate, naive_r)}{ratio(r.rate, plain)}"
            f"{r.peak_mib:>10,.0f}{r.browser_mib:>10,.0f}"
        )
    print(
        "\n'peak MiB' is the RSS of this process (sandbox included) plus everything under it; 'chromium' is"
        " the part under it\n(Playwright's driver and Chromium; summed RSS counts their shared pages"
        " more than once).\n'run' adds the login and, for robots, the publish."
    )
    if naive_r is not None:
        speedup = fast.rate / naive_r.rate
        verdict = "met" if speedup >= 10 else "MISSED"
        print(f"fast path / naive loop:  {speedup:6.1f}x  (target ≥ 10x: {verdict})")
    share = fast.rate / plain.rate
    verdict = "met" if share >= 0.8 else "MISSED"
    print(f"fast path / plain HTTP:  {share:6.2f}   (target ≥ 0.80: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=20_000, help="persons in the one-community world")
    parser.add_argument("--size", type=int, default=100, choices=PAGE_SIZES, help="rows per list page")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (robots and httpx)")
    parser.add_argument("--rate", type=float, default=1000, help="requests started per second (robots)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_PERSONS:,} persons")
    parser.add_argument("--no-naive", action="store_true", help="leave out the (slow) naive loop")
    parser.add_argument(
        "--naive-pages",
        type=int,
        default=None,
        help=f"the naive loop reads only this many pages (default: all; --quick: {QUICK_NAIVE_PAGES})",
    )
    args = parser.parse_args()
    if args.quick:
        args.persons = QUICK_PERSONS
        args.naive_pages = args.naive_pages or QUICK_NAIVE_PAGES
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
