"""Harvest benchmarks: one list read four ways, and every sandbox shape against plain HTTP.

    .venv/bin/python bench/harvest.py [--persons 20000] [--size 100] [--concurrency 4] [--rate 1000]
    .venv/bin/python bench/harvest.py --quick        # 2,000 persons: a smoke run in well under a minute
    .venv/bin/python bench/harvest.py --shapes [--persons 20000] [--rounds 3] [--rate N]
    .venv/bin/python bench/harvest.py --process [--persons 5000] [--rounds 5] [--rate N] [--concurrency N]

The default mode reads the persons of the sandbox's 人口管理系统 four ways.

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

``--shapes`` takes each of the six sandbox systems (numbered pages, a JSON API behind an SPA, an
.xlsx export, a 0-based admin, a layui API, ASP.NET postbacks inside an iframe) with the account
of its first community in a two-community world, and in each of ``--rounds`` interleaved rounds
(a fresh data dir, vault and store per round, one Harvester, the shapes in a rotated order) measures:

- ours: one whole ``Harvester.run`` of the system's demo robot (login, captcha included,
  walk, validation, staging, publish) under the system's declared politeness (``--rate`` lifts
  its rate, the concurrency stays), split into "login" (to the session's "logged in" log line),
  "walk" (to the last records staged) and "publish" (to the run's end, the session saved);
  the sandbox asks for no captcha unless ``--captcha``;
- plain: ``httpx`` with the cookies that run left in the vault, as many requests in flight as
  the system's declared concurrency and no rate cap, parsing with selectolax, json or pandas
  (the .xlsx) and counting records; the ASP.NET list is paged by posting its hidden fields back.

Both must read exactly the records the account may see. Figures are medians over the rounds; the
ratios are medians of each round's ours/plain, so both sides of a ratio saw the same load.

``--process`` times what an operator feels. `harvest sandbox` serves a one-community world in a
process of its own; in each of ``--rounds`` interleaved rounds (a fresh data dir and vault, the
shapes in a rotated order, every other round the plain side first) and for each shape it runs:

- ours: the whole ``harvest run ROBOT --account ACCOUNT`` process, spawn to exit, under the system's
  declared politeness unless ``--rate``/``--concurrency`` replace it (``HARVEST_POLITENESS``, as a
  unit would). Its JSON log and run row split it into start, login, walk,
  publish, keeping the session, and exit;
- plain: ``bench/plain_harvest.py``, a one-off script: browser login, cookies, browser closed,
  httpx at the same concurrency with no rate cap, records into one SQLite table.

``--nightly`` times the nights after the first: each round's vault first holds what an untimed run
of each shape left (its session, which the sandbox then ends, and the recipe of its browser login),
so ours logs in over HTTP where the recipe allows; the plain script logs in with its browser as ever.

Each side's peak memory is the PSS summed over its process tree (Chromium's detached crashpad
handlers found by a marker in their environment), sampled from /proc. Both sides must write
exactly the account's records (checked by key, ours in the snapshot, plain in its SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from loguru import logger
from plain_harvest import READERS, Plain
from plain_harvest import client as plain_client
from playwright.async_api import async_playwright
from served_sandbox import HARVEST, free_ports, sandbox_process

from connectors import Politeness, launch_options
from connectors.sandbox import population
from robots import Page, Walk, robot
from robots.runtime import Harvester, RobotSpec, RunReport, discover, registered
from robots.sandbox_population import PAGER, Person
from sandbox import DemoAccount, Sandbox, SandboxSystem, Switches, generate_world
from settings import Settings, load_settings
from store import Store, make_engine, record_spec
from vault import Vault

TABLE = "table.persons"
PAGE_SIZES = (10, 20, 50, 100)  # what the sandbox's pager accepts
DEFAULT_RATE = 1000.0
DEFAULT_CONCURRENCY = 4
DEFAULT_PERSONS = 20_000
QUICK_PERSONS = 2_000
QUICK_NAIVE_PAGES = 1
SAMPLE_S = 0.05

# The headers the plain-Playwright baseline reads by hand (the robot reads them from Person).
PERSON_HEADERS = {c.name: c.label for c in record_spec(Person).columns if c.role != "community"}


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
            for row in page.table(TABLE, Person):
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
            where = {field: headers.index(header) for field, header in PERSON_HEADERS.items()}
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


def demo_vault(settings: Settings, accounts: Iterable[DemoAccount]) -> Vault:
    """A new vault in the settings' data dir holding ``accounts``."""
    vault = Vault.init(settings)
    for account in accounts:
        account.enroll(vault)
    return vault


async def robot_run(spec: RobotSpec, data_dir: Path, url: str, account: DemoAccount, walks: dict[str, float]):
    """(b) and (c): one run in a Harvester of its own, on a fresh data dir (a first harvest)."""
    settings = load_settings(data_dir=data_dir, system_urls={"population": url})
    vault = demo_vault(settings, [account])
    store = Store(make_engine(settings.resolved_database_url))
    async with Harvester(settings, store, vault) as harvester:
        report = await harvester.run(spec, account.account)
    if report.status != "ok":
        raise SystemExit(f"{spec.name} ended {report.status} ({report.kind}): {report.message}")
    return report, walks[spec.name], vault.load_session("population", account.account)


async def plain_http(url: str, cookies: list[dict], path: str, concurrency: int) -> Result:
    """(d) httpx with the logged-in context's cookie, ``concurrency`` requests in flight, same parser."""
    gate = asyncio.Semaphore(concurrency)
    async with plain_client(url, cookies, concurrency) as client:

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
            for row in page.table(TABLE, Person):
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


SHAPE_COMMUNITIES = 2  # the account sees one of two: its scope is a real filter
SHAPE_SEED = 7
SHAPE_ROUNDS = 3
LOGGED_IN = "已登录"  # how connectors._session says a login succeeded


@dataclass(frozen=True)
class Shape:
    """One sandbox system: its demo robot, and a plain script reading the same list."""

    code: str
    robot: str
    key: str  # the records' key, as the plain script reads it


SHAPES = (
    Shape("population", "persons", "身份证号"),
    Shape("civil", "elderly", "archiveNo"),
    Shape("market", "entities", "统一社会信用代码"),
    Shape("health", "family_doctor", "签约编号"),
    Shape("assist", "assistance", "certNo"),
    Shape("disability", "disabled", "残疾人证号"),
)


@dataclass(frozen=True)
class Round:
    """One round of one shape: our whole run and its phases, and the plain read of the same records."""

    ours_s: float
    login_s: float  # from the call to the session's "logged in"
    walk_s: float  # from there to the last records staged: pages, parsing, validation, staging
    publish_s: float  # from there to the run's end: publish, and the session saved to the vault
    pages: int
    plain_s: float


class RunClock:
    """When a Harvester run reached each phase: a run hook, and a loguru sink for the
    session's "logged in" line (the runner reports no login of its own)."""

    def __init__(self) -> None:
        self.logged_in = self.staged = self.ended = 0.0

    def started(self, key: str, report: RunReport) -> None:
        self.logged_in = self.staged = 0.0

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None:
        if records:
            self.staged = time.perf_counter()

    def finished(self, key: str, report: RunReport) -> None:
        self.ended = time.perf_counter()

    def __call__(self, message: object) -> None:
        self.logged_in = time.perf_counter()

    @staticmethod
    def hears(record: dict[str, Any]) -> bool:
        return (
            record["name"] == "connectors._session"
            and record["function"] == "login"
            and record["message"].startswith(LOGGED_IN)
        )


def shape_robots(rate: float | None) -> dict[str, RobotSpec]:
    """Each shape's demo robot, its system's rate replaced by ``rate`` if given."""
    robots = discover()
    specs = {}
    for shape in SHAPES:
        spec = robots[shape.robot]
        if rate is not None:
            politeness = dataclasses.replace(spec.system.politeness, rate=rate)
            spec = dataclasses.replace(spec, system=dataclasses.replace(spec.system, politeness=politeness))
        specs[shape.code] = spec
    return specs


def truth_keys(system: SandboxSystem, dataset: str, account: DemoAccount) -> set[str]:
    key = next(found.key for found in system.spec.datasets if found.name == dataset)
    return set(system.truth(dataset, account.username)[key])


async def shape_round(
    shape: Shape,
    spec: RobotSpec,
    harvester: Harvester,
    account: DemoAccount,
    url: str,
    truth: set[str],
    clock: RunClock,
) -> Round:
    started = time.perf_counter()
    report = await harvester.run(spec, account.account)
    ours_s = time.perf_counter() - started
    if report.status != "ok" or report.records != len(truth) or report.new != len(truth):
        raise SystemExit(
            f"{shape.code}: our robot ended {report.status} with {report.records} records "
            f"({report.new} new), expected {len(truth)}. {report.message}"
        )
    if clock.logged_in < started:
        raise SystemExit(f"{shape.code}: no 'logged in' line from connectors._session: update RunClock.hears")
    state = harvester.vault.load_session(shape.code, account.account)
    if state is None:
        raise SystemExit(f"{shape.code}: the run left no session in the vault")
    concurrency = spec.system.politeness.concurrency
    async with plain_client(url, state["cookies"], concurrency) as client:
        before = time.perf_counter()
        records = await READERS[shape.code](Plain(client, concurrency))
        plain_s = time.perf_counter() - before
    keys = [record[shape.key] for record in records]
    if len(keys) != len(truth) or set(keys) != truth:
        raise SystemExit(f"{shape.code}: plain HTTP read {len(keys)} records, not the {len(truth)} expected")
    return Round(
        ours_s,
        login_s=clock.logged_in - started,
        walk_s=clock.staged - clock.logged_in,
        publish_s=clock.ended - clock.staged,
        pages=report.pages,
        plain_s=plain_s,
    )


async def bench_shapes(args: argparse.Namespace) -> None:
    world = generate_world(seed=SHAPE_SEED, persons=args.persons, communities=SHAPE_COMMUNITIES)
    specs = shape_robots(args.rate)
    clock = RunClock()
    logger.add(clock, level="INFO", filter=clock.hears)
    rounds: dict[str, list[Round]] = {shape.code: [] for shape in SHAPES}
    began = time.perf_counter()
    switches = {shape.code: Switches(captcha=args.captcha) for shape in SHAPES}
    with (
        Sandbox(world, switches=switches) as box,
        tempfile.TemporaryDirectory(prefix="bench-shapes-") as folder,
    ):
        urls = {code: system.url for code, system in box.systems.items()}
        accounts = {shape.code: box[shape.code].accounts[0] for shape in SHAPES}
        truths = {
            code: truth_keys(box[code], specs[code].dataset, account) for code, account in accounts.items()
        }
        print(
            f"{args.persons:,} persons in {SHAPE_COMMUNITIES} communities · each system's account of "
            f"{accounts['population'].scope} · {args.rounds} rounds · "
            f"captcha {'on' if args.captcha else 'off'} · {os.cpu_count()} CPUs · "
            f"load average {os.getloadavg()[0]:.1f} at the start\n"
        )
        for n in range(args.rounds):
            turn = n % len(SHAPES)  # each round starts with another shape: none always runs cold
            settings = load_settings(data_dir=Path(folder) / f"round-{n + 1}", system_urls=urls)
            vault = demo_vault(settings, accounts.values())
            store = Store(make_engine(settings.resolved_database_url))
            async with Harvester(settings, store, vault, hooks=[clock]) as harvester:
                for shape in SHAPES[turn:] + SHAPES[:turn]:
                    rounds[shape.code].append(
                        await shape_round(
                            shape,
                            specs[shape.code],
                            harvester,
                            accounts[shape.code],
                            urls[shape.code],
                            truths[shape.code],
                            clock,
                        )
                    )
            print(
                f"round {n + 1}/{args.rounds}: {time.perf_counter() - began:.0f} s so far, "
                f"load average {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )
    shapes_table(rounds, specs, {code: len(keys) for code, keys in truths.items()})
    print(
        f"\n{time.perf_counter() - began:.0f} s in all; load average {os.getloadavg()[0]:.1f} at the end "
        f"(1, 5, 15 min: {', '.join(f'{load:.1f}' for load in os.getloadavg())})"
    )


def shapes_table(
    rounds: dict[str, list[Round]], specs: dict[str, RobotSpec], records: dict[str, int]
) -> None:
    print(
        f"{'shape':12}{'records':>8}{'ours s':>8}{'login':>7}{'walk':>7}{'publish':>8}{'plain s':>8}"
        f"{'ours rec/s':>11}{'plain rec/s':>12}{'ours/plain':>11}{'w/o login':>10}{'pages':>6}{'floor s':>8}"
    )
    for code, runs in rounds.items():
        n = records[code]
        pages = median(r.pages for r in runs)
        print(
            f"{code:12}{n:>8,}"
            + _median([r.ours_s for r in runs], "{:.2f}", 8)
            + _median([r.login_s for r in runs], "{:.2f}", 7)
            + _median([r.walk_s for r in runs], "{:.2f}", 7)
            + _median([r.publish_s for r in runs], "{:.2f}", 8)
            + _median([r.plain_s for r in runs], "{:.2f}", 8)
            + _median([n / r.ours_s for r in runs], "{:,.0f}", 11)
            + _median([n / r.plain_s for r in runs], "{:,.0f}", 12)
            + _median([r.plain_s / r.ours_s for r in runs], "{:.3f}x", 11)
            + _median([r.plain_s / (r.ours_s - r.login_s) for r in runs], "{:.3f}x", 10)
            + f"{pages:>6.0f}{pages / specs[code].system.politeness.rate:>8.2f}"
        )
    print(
        "\n'ours' is one whole Harvester.run: 'login' (from the call to the session's 'logged in'), 'walk'"
        " (to the last records\nstaged: pages, parsing, validation, staging) and 'publish' (with the"
        " session saved to the vault). 'plain' reads the\nsame records with httpx and the run's cookies."
        " Ratios are medians of each round's ours/plain records/s; 'w/o login'\ntakes our login out."
        " 'pages': the list pages, API pages, clicks or downloads of our run; 'floor s': what the"
        " declared\nrate alone makes them last."
    )


def _side_lines(label: str, sides: list[Side]) -> str:
    """One side's median phases, and under them the peak of its median round, by process name."""
    split = " · ".join(
        f"{name} {median(side.phases.get(name, 0.0) for side in sides):.2f}" for name in sides[0].phases
    )
    middle = sorted(sides, key=lambda side: side.peak.kib)[len(sides) // 2]
    peak = middle.peak
    parts = " ".join(
        f"{name} {kib / 1024:,.0f}" for name, kib in sorted(peak.parts.items(), key=lambda p: -p[1])
    )
    rss = f"; RSS only: {', '.join(sorted(peak.rss_only))}" if peak.rss_only else ""
    by_phase = " · ".join(f"{name} {kib / 1024:,.0f}" for name, kib in middle.phase_peaks.items())
    return (
        f"{label:6}{split}\n{'':18}peak {peak.kib / 1024:,.0f} MiB in '{middle.peak_phase}', "
        f"{peak.processes} processes: {parts}{rss}\n{'':18}peak MiB by phase: {by_phase}"
    )


def _median(values: list[float], form: str, width: int) -> str:
    return f"{form.format(median(values)):>{width}}"


PROCESS_PERSONS = 5_000  # the world: one account, 5,000 persons
PROCESS_QUICK_PERSONS = 1_000
PROCESS_ROUNDS = 5
PROCESS_COMMUNITIES = 1  # the account sees the whole world, as in the figures
PSS_SAMPLE_S = 0.04  # a sample takes about 5 ms of a core: more often would load the machine we measure
PLAIN_SCRIPT = Path(__file__).with_name("plain_harvest.py")
# Settings of the caller's that would point the runs away from their round's own data dir and vault.
FOREIGN_SETTINGS = ("HARVEST_DATABASE_URL", "HARVEST_VAULT_KEY", "HARVEST_VAULT_KEY_FILE")

# The phases of each side: (name, the mark that ends it). Marks are wall-clock times; ours come from
# the run's JSON log and its run row, the plain script's from its own last line.
OURS_PHASES = (
    ("start", "started"),  # Python, imports, settings, vault, Chromium, the run row
    ("login", "logged_in"),  # a context, the login page, the form, the settle
    ("walk", "walked"),  # every page read, validated, staged (only list walks log their end)
    ("publish", "published"),  # the run's transaction, search index included (the run row's finished_at)
    ("keep", "ended"),  # the session saved to the vault, the run's end logged
    ("exit", "exit"),  # the browser closed, the table printed, the interpreter gone
)
PLAIN_PHASES = (
    ("start", "imported"),
    ("chromium", "launched"),
    ("login", "logged_in"),
    ("close", "closed"),
    ("walk", "read"),
    ("write", "written"),
    ("exit", "exit"),
)


@dataclass
class TreePeak:
    """The peak of a process tree's summed PSS: how much, when, and by process name."""

    kib: int = 0
    at: float = 0.0  # time.time()
    parts: dict[str, int] = field(default_factory=dict)
    processes: int = 0
    rss_only: set[str] = field(default_factory=set)  # names whose PSS could not be read (their RSS counts)


class TreeSampler:
    """Samples the PSS of ``pid`` and every process under it from /proc, in a background thread.

    "Under it" is the tree of children, plus every process that carries ``marker`` in its environment:
    Chromium's crashpad handlers detach themselves from the tree (their parent becomes init) but
    inherit the environment.
    """

    def __init__(self, pid: int, marker: str, interval: float = PSS_SAMPLE_S) -> None:
        self.pid = pid
        self.marker = marker.encode()
        self.interval = interval
        self.peak = TreePeak()
        self.series: list[tuple[float, int]] = []  # (time.time(), KiB) of every sample
        self._looked: set[int] = set()  # pids whose environment was read: a pid's environment stays
        self._detached: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pss-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        parts: dict[str, int] = {}
        rss_only = set()
        pids = {self.pid, *_descendants(self.pid)}
        pids |= self._marked(pids)
        for pid in pids:
            name = _comm(pid)
            kib, exact = _pss_kib(pid)
            if not kib:  # ended since it was listed
                continue
            parts[name] = parts.get(name, 0) + kib
            if not exact:
                rss_only.add(name)
        total, now = sum(parts.values()), time.time()
        self.series.append((now, total))
        if total > self.peak.kib:
            self.peak = TreePeak(total, now, parts, len(pids), rss_only)

    def _marked(self, tree: set[int]) -> set[int]:
        """Processes outside ``tree`` with the marker, reading the environment of new pids only."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or (pid := int(entry)) in self._looked or pid in tree:
                continue
            self._looked.add(pid)
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if self.marker in f.read():
                        self._detached.add(pid)
            except OSError:  # ended, or not ours to read (then not ours at all)
                pass
        return self._detached

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return


def _pss_kib(pid: int) -> tuple[int, bool]:
    """The process's PSS, or its RSS where smaps_rollup is not ours to read; (0, True) once it ended."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]), True
    except FileNotFoundError:
        return 0, True
    except OSError:
        pass
    return _rss_kib(pid), False


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


@dataclass(frozen=True)
class Timed:
    """One side's process, spawn to exit."""

    seconds: float
    spawned: float  # time.time()
    exited: float
    stdout: str
    peak: TreePeak
    series: list[tuple[float, int]]


def timed(label: str, command: list[str], env: dict[str, str], cwd: Path) -> Timed:
    """Run ``command`` to its end, sampling its process tree; a failure stops the bench with its stderr."""
    marker = f"BENCH_TREE={uuid.uuid4().hex}"
    env = {**env, "BENCH_TREE": marker.partition("=")[2]}
    spawned, began = time.time(), time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with TreeSampler(process.pid, marker) as sampler:
        stdout, stderr = process.communicate()
    seconds, exited = time.perf_counter() - began, time.time()
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-8:]
        raise SystemExit(f"{label} exited {process.returncode}:\n" + "\n".join(tail))
    return Timed(seconds, spawned, exited, stdout.decode(errors="replace"), sampler.peak, sampler.series)


@dataclass(frozen=True)
class Side:
    """One side of one round: its time, peak, phases and the requests the system served it."""

    seconds: float
    records: int
    peak: TreePeak
    phases: dict[str, float]
    peak_phase: str
    phase_peaks: dict[str, int]  # KiB: the highest sample in each phase
    requests: int  # as the sandbox counted them: the browser's login included


Phases = list[tuple[str, float, float]]  # (name, from, to), wall-clock times


def spans(marks: dict[str, float | None], named: tuple[tuple[str, str], ...]) -> Phases:
    """Each phase from the mark before it to its own; a phase whose mark is missing is merged into
    the next ("walk+publish"). The spawn is always marked."""
    found: Phases = []
    last, pending = marks["spawned"], []
    for name, mark in named:
        pending.append(name)
        when = marks.get(mark)
        if when is None or last is None:
            continue
        found.append(("+".join(pending), last, when))
        last, pending = when, []
    return found


def phase_at(at: float, phases: Phases) -> str:
    """The phase a moment falls in (the last one if after them all)."""
    return next((name for name, _, to in phases if at <= to), phases[-1][0])


def phase_peaks(series: list[tuple[float, int]], phases: Phases) -> dict[str, int]:
    """The highest sample of each phase, in the phases' order."""
    peaks = dict.fromkeys((name for name, _, _ in phases), 0)
    for at, kib in series:
        name = phase_at(at, phases)
        peaks[name] = max(peaks[name], kib)
    return {name: kib for name, kib in peaks.items() if kib}


@dataclass(frozen=True)
class ProcessRound:
    ours: Side
    plain: Side


class ProcessBench:
    """The sandbox in a process of its own, and each side of a round as an operator would start it."""

    def __init__(self, args: argparse.Namespace, box: Sandbox, port: int, folder: Path) -> None:
        self.args = args
        self.box = box
        self.urls = {code: f"http://127.0.0.1:{port + i}" for i, code in enumerate(box.systems)}
        self.folder = folder
        self.specs = {shape.code: discover()[shape.robot] for shape in SHAPES}
        self.accounts = {shape.code: box[shape.code].accounts[0] for shape in SHAPES}
        self.truths = {
            code: truth_keys(box[code], self.specs[code].dataset, account)
            for code, account in self.accounts.items()
        }
        self.limits = {
            name: value for name in ("concurrency", "rate") if (value := getattr(args, name)) is not None
        }
        self.launch = json.dumps(launch_options(load_settings()))

    def concurrency(self, code: str) -> int:
        return self.limits.get("concurrency") or self.specs[code].system.politeness.concurrency

    def prepare(self, data_dir: Path) -> None:
        """A fresh data dir and vault holding every shape's account (outside the timing); ``--nightly``:
        and what one run of each shape leaves there (each timed run then finds its session ended)."""
        demo_vault(load_settings(data_dir=data_dir), self.accounts.values())
        if self.args.nightly:
            for shape in SHAPES:
                self.ours(shape, data_dir)

    def ours(self, shape: Shape, data_dir: Path) -> Side:
        env = {key: value for key, value in os.environ.items() if key not in FOREIGN_SETTINGS}
        env |= {
            "HARVEST_DATA_DIR": str(data_dir),
            "HARVEST_SYSTEM_URLS": json.dumps(self.urls),
            "HARVEST_LOG_JSON": "true",  # the timestamps of the run's own log lines split its time
        }
        if self.limits:
            env["HARVEST_POLITENESS"] = json.dumps(dict.fromkeys(self.urls, self.limits))
        command = [str(HARVEST)]
        log = data_dir / "logs" / "harvest.jsonl"
        offset = log.stat().st_size if log.exists() else 0
        self._reset(shape.code)
        run = timed(
            f"{shape.code}: harvest run",
            [*command, "run", shape.robot, "--account", self.accounts[shape.code].account],
            env,
            data_dir,
        )
        records, keys, published = self._published(shape, data_dir)
        marks = {
            "spawned": run.spawned,
            **_log_marks(log, offset),
            "published": published,
            "exit": run.exited,
        }
        return self._side(shape, run, records, keys, marks, OURS_PHASES)

    def plain(self, shape: Shape, data_dir: Path) -> Side:
        account = self.accounts[shape.code]
        out = data_dir / f"plain-{shape.code}.sqlite"
        command = [
            sys.executable,
            str(PLAIN_SCRIPT),
            shape.code,
            self.urls[shape.code],
            account.username,
            str(out),
            "--concurrency",
            str(self.concurrency(shape.code)),
            "--launch",
            self.launch,
        ]
        self._reset(shape.code)
        run = timed(
            f"{shape.code}: plain_harvest.py",
            command,
            {**os.environ, "PLAIN_PASSWORD": account.password},
            data_dir,
        )
        said = json.loads(run.stdout.strip().splitlines()[-1])
        with contextlib.closing(sqlite3.connect(out)) as db:
            keys = {row[0] for row in db.execute(f'select "{shape.key}" from records')}
            records = db.execute("select count(*) from records").fetchone()[0]
        if records != said["records"]:
            raise SystemExit(
                f"{shape.code}: the plain script said {said['records']} records, wrote {records}"
            )
        marks = {"spawned": run.spawned, **said["marks"], "exit": run.exited}
        return self._side(shape, run, records, keys, marks, PLAIN_PHASES)

    def _side(
        self,
        shape: Shape,
        run: Timed,
        records: int,
        keys: set[str],
        marks: dict[str, float | None],
        named: tuple[tuple[str, str], ...],
    ) -> Side:
        truth = self.truths[shape.code]
        if records != len(truth) or keys != truth:
            raise SystemExit(
                f"{shape.code}: {records} records ({len(keys & truth)} right), not the {len(truth)}"
            )
        stats = httpx.get(f"{self.urls[shape.code]}/__sandbox__/stats").json()
        phases = spans(marks, named)
        return Side(
            run.seconds,
            records,
            run.peak,
            {name: to - since for name, since, to in phases},
            phase_at(run.peak.at, phases),
            phase_peaks(run.series, phases),
            stats["requests"],
        )

    def _reset(self, code: str) -> None:
        """Sessions and traffic counts back to nothing: each side's count of requests is its own."""
        httpx.post(f"{self.urls[code]}/__sandbox__/reset").raise_for_status()

    def _published(self, shape: Shape, data_dir: Path) -> tuple[int, set[str], float | None]:
        """Our run's records, their keys in the snapshot, and when the run was published."""
        dataset = self.specs[shape.code].dataset
        with contextlib.closing(sqlite3.connect(data_dir / "harvest.db")) as db:
            status, seen, new, finished = db.execute(
                "select status, seen, new, finished_at from run where dataset = ? order by started_at desc",
                (dataset,),
            ).fetchone()
            (key,) = json.loads(
                db.execute("select key from datasetinfo where name = ?", (dataset,)).fetchone()[0]
            )
            keys = {
                row[0] for row in db.execute(f'select "{key}" from snap_{dataset} where gone_run is null')
            }
        if status != "ok" or (new != seen and not self.args.nightly):  # a night after: nothing new
            raise SystemExit(f"{shape.code}: our run ended {status} with {seen} records, {new} new")
        published = (
            dt.datetime.fromisoformat(finished).replace(tzinfo=dt.UTC).timestamp() if finished else None
        )
        return seen, keys, published


def _log_marks(log: Path, offset: int) -> dict[str, float]:
    """When the run's log says it started, logged in, ended its walk and ended (lines after ``offset``)."""
    marks: dict[str, float] = {}
    with log.open(encoding="utf-8") as f:
        f.seek(offset)
        for line in f:
            record = json.loads(line)["record"]
            where, message = (record["name"], record["function"]), record["message"]
            mark = {
                ("robots._reports", "started"): "started",
                ("robots._paging", "ended"): "walked",
                ("robots._reports", "finished"): "ended",
            }.get(where)
            if message.startswith(LOGGED_IN):
                mark = "logged_in"
            if mark is not None:
                marks.setdefault(mark, record["time"]["timestamp"])
    return marks


def bench_process(args: argparse.Namespace) -> None:
    world = generate_world(seed=SHAPE_SEED, persons=args.persons, communities=PROCESS_COMMUNITIES)
    box = Sandbox(world)  # not started: its accounts and truths; `harvest sandbox` serves the same world
    port = free_ports(len(box.systems))
    rounds: dict[str, list[ProcessRound]] = {shape.code: [] for shape in SHAPES}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-process-") as name:
        folder = Path(name)
        bench = ProcessBench(args, box, port, folder)
        served = sandbox_process(
            persons=args.persons,
            communities=PROCESS_COMMUNITIES,
            seed=SHAPE_SEED,
            port=port,
            urls=bench.urls.values(),
            cwd=folder,
        )
        with served:
            politeness = ", ".join(f"{k} {v:g}" for k, v in bench.limits.items()) or "as each system declares"
            print(
                f"{args.persons:,} persons, one community · each system's account of "
                f"{bench.accounts['population'].scope} · {args.rounds} rounds · politeness {politeness} · "
                f"{'nightly (a recipe, an ended session)' if args.nightly else 'first runs'} · "
                f"{os.cpu_count()} CPUs · load average {os.getloadavg()[0]:.1f} at the start\n"
            )
            for n in range(args.rounds):
                data_dir = folder / f"round-{n + 1}"
                bench.prepare(data_dir)
                turn = n % len(SHAPES)  # each round starts with another shape, and every other with plain
                for shape in SHAPES[turn:] + SHAPES[:turn]:
                    if n % 2:
                        plain = bench.plain(shape, data_dir)
                        ours = bench.ours(shape, data_dir)
                    else:
                        ours = bench.ours(shape, data_dir)
                        plain = bench.plain(shape, data_dir)
                    rounds[shape.code].append(ProcessRound(ours, plain))
                print(
                    f"round {n + 1}/{args.rounds}: {time.perf_counter() - began:.0f} s so far, "
                    f"load average {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
    process_table(rounds)
    print(
        f"\n{time.perf_counter() - began:.0f} s in all; load average (1, 5, 15 min) at the end: "
        f"{', '.join(f'{load:.1f}' for load in os.getloadavg())}"
    )


def process_table(rounds: dict[str, list[ProcessRound]]) -> None:
    print(
        f"{'shape':12}{'records':>8}{'ours s':>8}{'plain s':>8}{'ours rec/s':>11}{'plain rec/s':>12}"
        f"{'ours/plain':>11}{'ours MiB':>9}{'plain MiB':>10}{'MiB o/p':>8}{'requests':>10}"
    )
    for code, runs in rounds.items():
        n = runs[0].ours.records
        requests = f"{median(r.ours.requests for r in runs):.0f}/{median(r.plain.requests for r in runs):.0f}"
        print(
            f"{code:12}{n:>8,}"
            + _median([r.ours.seconds for r in runs], "{:.2f}", 8)
            + _median([r.plain.seconds for r in runs], "{:.2f}", 8)
            + _median([n / r.ours.seconds for r in runs], "{:,.0f}", 11)
            + _median([n / r.plain.seconds for r in runs], "{:,.0f}", 12)
            + _median([r.plain.seconds / r.ours.seconds for r in runs], "{:.3f}x", 11)
            + _median([r.ours.peak.kib / 1024 for r in runs], "{:,.0f}", 9)
            + _median([r.plain.peak.kib / 1024 for r in runs], "{:,.0f}", 10)
            + _median([r.ours.peak.kib / r.plain.peak.kib for r in runs], "{:.2f}x", 8)
            + f"{requests:>10}"
        )
    print("\nWhere the time goes (median seconds of each phase), and the peak (its median round):")
    for code, runs in rounds.items():
        print(f"{code:12}{_side_lines('ours', [r.ours for r in runs])}")
        print(f"{'':12}{_side_lines('plain', [r.plain for r in runs])}")
    print(
        "\n'ours' is the whole `harvest run ROBOT --account ACCOUNT` process, spawn to exit; 'plain' the",
        "whole bench/plain_harvest.py process (browser login, then httpx). Ratios are medians of each",
        "round's ours/plain. 'MiB' is the peak PSS summed over the process and every process under it",
        f"(Python, Playwright's driver, Chromium), sampled every {PSS_SAMPLE_S * 1000:.0f} ms. 'requests':"
        " what the sandbox",
        "served each side, ours/plain, the browser's login pages included. Ours' phases come from its JSON",
        "log and run row; a phase whose line is missing is merged into the next ('walk+publish').",
        sep="\n",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--persons",
        type=int,
        default=None,
        help="persons in the world (default 20,000 in one community; --shapes: two; "
        f"--process: {PROCESS_PERSONS:,} in one)",
    )
    parser.add_argument("--size", type=int, default=100, choices=PAGE_SIZES, help="rows per list page")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help=f"requests in flight, robots and httpx (default {DEFAULT_CONCURRENCY}; --process: as declared)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help=f"requests started per second by the robots (default {DEFAULT_RATE:g}; --shapes, --process: "
        "as declared)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK_PERSONS:,} persons (--process: {PROCESS_QUICK_PERSONS:,}, one round)",
    )
    parser.add_argument("--no-naive", action="store_true", help="leave out the (slow) naive loop")
    parser.add_argument(
        "--naive-pages",
        type=int,
        default=None,
        help=f"the naive loop reads only this many pages (default: all; --quick: {QUICK_NAIVE_PAGES})",
    )
    parser.add_argument(
        "--shapes",
        action="store_true",
        help="every sandbox shape: the demo robot's whole run against plain httpx with its session "
        f"({SHAPE_COMMUNITIES} communities; uses --persons, --rounds, --rate and --captcha only)",
    )
    parser.add_argument(
        "--process",
        action="store_true",
        help="every sandbox shape: the whole `harvest run` process against a plain script's process, "
        "time and peak PSS of each process tree (uses --persons, --rounds, --rate, --concurrency, --quick)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"interleaved rounds (medians): --shapes 3, --process {PROCESS_ROUNDS}",
    )
    parser.add_argument("--captcha", action="store_true", help="--shapes: every login reads an image captcha")
    parser.add_argument(
        "--nightly",
        action="store_true",
        help="--process: every night but the first: each round's vault holds what an untimed run of each "
        "shape left (the recipe of its browser login, a session the system has since ended)",
    )
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    if args.process:
        args.persons = args.persons or (PROCESS_QUICK_PERSONS if args.quick else PROCESS_PERSONS)
        args.rounds = args.rounds or (1 if args.quick else PROCESS_ROUNDS)
        bench_process(args)
        return
    args.persons = args.persons or (QUICK_PERSONS if args.quick else DEFAULT_PERSONS)
    if args.shapes:
        args.rounds = args.rounds or SHAPE_ROUNDS
        asyncio.run(bench_shapes(args))
        return
    args.rate = args.rate or DEFAULT_RATE
    args.concurrency = args.concurrency or DEFAULT_CONCURRENCY
    if args.quick:
        args.naive_pages = args.naive_pages or QUICK_NAIVE_PAGES
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
