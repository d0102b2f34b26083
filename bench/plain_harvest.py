"""A plain one-off harvest of one sandbox list: the baseline of ``bench/harvest.py --process``.

    PLAIN_PASSWORD=… .venv/bin/python bench/plain_harvest.py SHAPE URL USERNAME OUT.sqlite \
        [--concurrency 4] [--launch '{"executable_path": "/usr/bin/chromium", "args": […]}']

What a competent engineer writes for one system without a framework: log in with a real browser
(Playwright on Debian's chromium, with the flags ``--launch`` gives), take the cookies, close the
browser, read every list page with httpx (``--concurrency`` requests in flight, no rate cap), parse
with selectolax, json or pandas (the .xlsx), the ASP.NET list paged by posting its hidden fields back,
and write the records to one SQLite table (``executemany``, one commit). Nothing of gridharvest is
imported. Its last line of output is JSON: the records written, and when (``time.time()``) each step
ended, for the bench to split the run. ``bench/harvest.py --shapes`` reads with the same functions.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.async_api import async_playwright
from selectolax.lexbor import LexborHTMLParser, LexborNode

POSTBACK = re.compile(r"__doPostBack\('([^']*)','([^']*)'\)")
DISABILITY_ENCODING = "gbk"  # named only in the pages' <meta>: a plain script decodes it itself
LOGIN_TIMEOUT_MS = 30_000

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


def client(url: str, cookies: list[dict[str, Any]], concurrency: int) -> httpx.AsyncClient:
    """An httpx client holding a logged-in browser's cookies, ``concurrency`` connections at most."""
    jar = httpx.Cookies()
    for cookie in cookies:
        jar.set(cookie["name"], cookie["value"], domain=cookie["domain"], path=cookie.get("path", "/"))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=url, cookies=jar, limits=limits, timeout=30)


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
    import pandas as pd  # only this shape needs it, and it costs half a second to import

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
class LoginForm:
    """Where a system's login form is and what shows once logged in, as read off its pages."""

    path: str
    username: str
    password: str
    submit: str
    logged_in: str


STANDARD_FORM = LoginForm("/login", "#username", "#password", "#login-button", "#current-user")
LOGINS = {
    "population": STANDARD_FORM,
    "civil": STANDARD_FORM,
    "market": STANDARD_FORM,
    "health": LoginForm("/admin/login", "#loginName", "#loginPwd", "input[type=submit]", ".user-name"),
    "assist": LoginForm(
        "/user/login",
        "#LAY-user-login-account",
        "#LAY-user-login-pwd",
        "button[lay-submit]",
        ".layui-nav-username",
    ),
    "disability": LoginForm("/Login.aspx", "#txtUserName", "#txtPassword", "#btnLogin", "#lblUser"),
}
READERS: dict[str, Callable[[Plain], Awaitable[PlainRecords]]] = {
    "population": plain_population,
    "civil": plain_civil,
    "market": plain_market,
    "health": plain_health,
    "assist": plain_assist,
    "disability": plain_disability,
}


async def browser_login(
    url: str, form: LoginForm, username: str, password: str, launch: dict[str, Any], marks: dict[str, float]
) -> list[dict[str, Any]]:
    """Log in through the form in Chromium and hand back its cookies; the browser is closed after."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**launch)
        marks["launched"] = time.time()
        page = await browser.new_page()
        await page.goto(url + form.path)
        await page.fill(form.username, username)
        await page.fill(form.password, password)
        await page.click(form.submit)
        await page.wait_for_selector(form.logged_in, timeout=LOGIN_TIMEOUT_MS)
        marks["logged_in"] = time.time()
        cookies = [dict(cookie) for cookie in await page.context.cookies()]
        await browser.close()
    return cookies


def write(path: str, records: PlainRecords) -> None:
    """One table of text columns named as the system names them."""
    if not records:
        return
    columns = list(records[0])
    names = ", ".join('"{}" text'.format(c.replace('"', '""')) for c in columns)
    db = sqlite3.connect(path)
    db.execute(f"create table records ({names})")
    db.executemany(
        f"insert into records values ({', '.join('?' * len(columns))})",
        ([None if r.get(c) is None else str(r[c]) for c in columns] for r in records),
    )
    db.commit()
    db.close()


async def harvest(args: argparse.Namespace) -> dict[str, Any]:
    marks = {"imported": time.time()}
    launch = json.loads(args.launch)
    cookies = await browser_login(
        args.url, LOGINS[args.shape], args.username, os.environ["PLAIN_PASSWORD"], launch, marks
    )
    marks["closed"] = time.time()
    async with client(args.url, cookies, args.concurrency) as http:
        records = await READERS[args.shape](Plain(http, args.concurrency))
    marks["read"] = time.time()
    write(args.out, records)
    marks["written"] = time.time()
    return {"records": len(records), "marks": marks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=sorted(READERS))
    parser.add_argument("url", help="the system's base URL")
    parser.add_argument("username", help="the account's user name (its password: PLAIN_PASSWORD)")
    parser.add_argument("out", help="the SQLite file to write (its table: records)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument(
        "--launch",
        default='{"executable_path": "/usr/bin/chromium", "headless": true}',
        help="BrowserType.launch keyword arguments as JSON",
    )
    print(json.dumps(asyncio.run(harvest(parser.parse_args()))))


if __name__ == "__main__":
    main()
