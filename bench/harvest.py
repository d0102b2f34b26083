"""Harvest benchmarks: one list read four ways, and every sandbox shape against plain HTTP.

    .venv/bin/python bench/harvest.py [--persons 20000] [--size 100] [--concurrency 4] [--rate 1000]
    .venv/bin/python bench/harvest.py --quick        # 2,000 persons: a smoke run in well under a minute
    .venv/bin/python bench/harvest.py --shapes [--persons 20000] [--rounds 3] [--rate N]

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
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import pandas as pd
from loguru import logger
from playwright.async_api import async_playwright
from selectolax.lexbor import LexborHTMLParser, LexborNode

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
    async with _client(url, cookies, concurrency) as client:

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


def _client(url: str, cookies: list[dict], concurrency: int) -> httpx.AsyncClient:
    """An httpx client holding a logged-in context's cookies, ``concurrency`` connections at most."""
    jar = httpx.Cookies()
    for cookie in cookies:
        jar.set(cookie["name"], cookie["value"], domain=cookie["domain"], path=cookie.get("path", "/"))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=url, cookies=jar, limits=limits, timeout=30)


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
POSTBACK = re.compile(r"__doPostBack\('([^']*)','([^']*)'\)")
DISABILITY_ENCODING = "gbk"  # named only in the pages' <meta>: a plain script decodes it itself

PlainRecords = list[dict[str, Any]]


class Plain:
    """httpx through a logged-in session: at most ``concurrency`` requests in flight, no rate cap."""

    def __init__(self, client: httpx.AsyncClient, concurrency: int) -> None:
        self.client = client
        self._gate = asyncio.Semaphore(concurrency)

    async def get(self, path: str, **params: int) -> httpx.Response:
        async with self._gate:
            return _ok(await self.client.get(path, params=params))

    async def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        async with self._gate:
            return _ok(await self.client.post(path, data=data))

    async def each(self, path: str, pages: Iterable[dict[str, int]]) -> list[httpx.Response]:
        return list(await asyncio.gather(*(self.get(path, **params) for params in pages)))


def _ok(reply: httpx.Response) -> httpx.Response:
    if reply.status_code != 200:
        raise SystemExit(f"plain HTTP: {reply.url} answered {reply.status_code} (logged out?)")
    return reply


def _html(reply: httpx.Response, encoding: str | None = None) -> LexborHTMLParser:
    return LexborHTMLParser(reply.content.decode(encoding) if encoding else reply.text)


def _texts(nodes: Iterable[LexborNode]) -> list[str]:
    return [node.text(strip=True) for node in nodes]


def _rows(tree: LexborHTMLParser, headers: list[str], rows: str) -> PlainRecords:
    """Each row's cells (``th`` and ``td`` alike) by the headers over them."""
    return [dict(zip(headers, _texts(tr.css("th, td")), strict=False)) for tr in tree.css(rows)]


async def _numbered(
    http: Plain, path: str, *, page: str, size: str, per_page: int, start: int, total: str
) -> list[LexborHTMLParser]:
    """Every numbered page of a list: the first page's stated ``total`` says how many."""
    first = _html(await http.get(path, **{page: start, size: per_page}))
    count = math.ceil(int(first.css_first(total).text(strip=True)) / per_page)
    rest = await http.each(path, ({page: n, size: per_page} for n in range(start + 1, start + count)))
    return [first, *map(_html, rest)]


async def _api(
    http: Plain, path: str, *, page: str, size: str, per_page: int, rows: str, total: str
) -> PlainRecords:
    """Every page of a paged JSON list: the first answer's ``total`` says how many."""
    first = (await http.get(path, **{page: 1, size: per_page})).json()
    count = math.ceil(first[total] / per_page)
    rest = await http.each(path, ({page: n, size: per_page} for n in range(2, count + 1)))
    return [item for body in [first, *(reply.json() for reply in rest)] for item in body[rows]]


async def plain_population(http: Plain) -> PlainRecords:
    trees = await _numbered(http, "/persons", page="page", size="size", per_page=100, start=1, total="#total")
    table = "table.persons"
    return [
        row
        for tree in trees
        for row in _rows(tree, _texts(tree.css(f"{table} thead th")), f"{table} tbody tr")
    ]


async def plain_civil(http: Plain) -> PlainRecords:
    return await _api(
        http, "/api/elderly/list", page="pageNum", size="pageSize", per_page=100, rows="rows", total="total"
    )


async def plain_market(http: Plain) -> PlainRecords:
    reply = await http.get("/entities/export.xlsx")
    return pd.read_excel(io.BytesIO(reply.content), dtype=str).to_dict(orient="records")


async def plain_health(http: Plain) -> PlainRecords:
    """0-based pages; each row is led by a ``<th>`` under a two-row header (groups over fields)."""
    trees = await _numbered(
        http, "/admin/sign/list", page="pageNo", size="pageSize", per_page=20, start=0, total=".total b"
    )
    records = []
    for tree in trees:
        top, fields = (_texts(tree.css(f"table.table-list thead tr:nth-child({n}) th")) for n in (1, 2))
        records += _rows(tree, [*top[:2], *fields, top[-1]], "table.table-list tbody tr")
    return records


async def plain_assist(http: Plain) -> PlainRecords:
    return await _api(
        http, "/assist/api/list", page="page", size="limit", per_page=50, rows="data", total="count"
    )


async def plain_disability(http: Plain) -> PlainRecords:
    """ASP.NET postbacks: each page's hidden fields, posted back with 下一页's event, bring the next."""
    tree = _html(await http.get("/List.aspx"), DISABILITY_ENCODING)
    records: PlainRecords = []
    while True:
        headers = _texts(tree.css("#gvList tr:first-child th"))
        records += _rows(tree, headers, "#gvList tr:not(:first-child):not(.pager)")
        link = next((a for a in tree.css("#gvList tr.pager a") if a.text(strip=True) == "下一页"), None)
        if link is None:
            return records
        found = POSTBACK.search(link.attributes.get("href") or "")
        if found is None:
            raise SystemExit("plain HTTP: the 下一页 link of the ASP.NET list is not a __doPostBack")
        form = {
            node.attributes["name"] or "": node.attributes.get("value") or ""
            for node in tree.css("#form1 input[type=hidden]")
        }
        form |= {"__EVENTTARGET": found[1], "__EVENTARGUMENT": found[2]}
        tree = _html(await http.post("/List.aspx", form), DISABILITY_ENCODING)


@dataclass(frozen=True)
class Shape:
    """One sandbox system: its demo robot, and a plain script reading the same list."""

    code: str
    robot: str
    key: str  # the records' key, as the plain script reads it
    plain: Callable[[Plain], Awaitable[PlainRecords]]


SHAPES = (
    Shape("population", "persons", "身份证号", plain_population),
    Shape("civil", "elderly", "archiveNo", plain_civil),
    Shape("market", "entities", "统一社会信用代码", plain_market),
    Shape("health", "family_doctor", "签约编号", plain_health),
    Shape("assist", "assistance", "certNo", plain_assist),
    Shape("disability", "disabled", "残疾人证号", plain_disability),
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
            and record["message"].startswith("logged in")
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
    async with _client(url, state["cookies"], concurrency) as client:
        before = time.perf_counter()
        records = await shape.plain(Plain(client, concurrency))
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


def _median(values: list[float], form: str, width: int) -> str:
    return f"{form.format(median(values)):>{width}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--persons", type=int, default=20_000, help="persons in the world (one community; --shapes: two)"
    )
    parser.add_argument("--size", type=int, default=100, choices=PAGE_SIZES, help="rows per list page")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (robots and httpx)")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help=f"requests started per second by the robots (default {DEFAULT_RATE:g}; --shapes: as declared)",
    )
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_PERSONS:,} persons")
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
    parser.add_argument("--rounds", type=int, default=3, help="--shapes: interleaved rounds (medians)")
    parser.add_argument("--captcha", action="store_true", help="--shapes: every login reads an image captcha")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    if args.shapes:
        asyncio.run(bench_shapes(args))
        return
    args.rate = args.rate or DEFAULT_RATE
    if args.quick:
        args.persons = QUICK_PERSONS
        args.naive_pages = args.naive_pages or QUICK_NAIVE_PAGES
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
