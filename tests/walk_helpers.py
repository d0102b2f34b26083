"""A small list system whose paging can be switched to what real back offices do, and a way to walk it.

Its pages differ from the sandbox's on purpose (other markup, other texts): the walk guards must
hold on systems nobody here wrote. ``logged_in()`` opens a real session through the real login code;
``walked()`` runs a robot-like async generator over a real ``Walk`` of it.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from loguru import logger
from playwright.async_api import async_playwright

from connectors import (
    Credentials,
    FormLogin,
    HarvestFailure,
    Polite,
    Politeness,
    Session,
    SolverChain,
    System,
    launch_browser,
)
from robots import Walk
from robots.runtime import run_blocking
from settings import load_settings
from vault import Secret

USERNAME, PASSWORD = "clerk", "List-Pass-2026"
COLUMNS = {"编号": "no", "名称": "name"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Switches:
    """How the list system pages; the defaults are a well-behaved numbered list."""

    records: int = 23
    size: int = 5
    past_end: Literal["empty", "redirect", "first", "index"] = "empty"  # what a page past the end is
    zero_based: bool = False
    window: int | None = None  # the pager shows only the first this many page numbers
    last_link: bool = True  # the pager has a 末页 link to the real last page
    pager: bool = True
    pager_pages: int | None = None  # the pages the pager claims, if not the real count (an under-count)
    stated: int | None = None  # the "共 N 条" the page states, if not the real count; 0: none stated
    endless: bool = False  # every page has new rows, however far: a system that never ends
    delay: float = 0.0  # seconds each list page takes
    api_ignores_page: bool = False  # the JSON API answers page 1 whatever page is asked for
    expire_after: int | None = None  # postback pages served before the session ends, once
    failing: int | None = None  # the postback page (1: the first load) whose answer fails ``fails`` times
    fails: int = 2
    dropping: bool = False  # the failing answers are dropped connections, not 500s
    stamped: bool = False  # postback pages show the time they were drawn: no two loads of a page are alike


@dataclass
class ListSystem:
    """The state of one served list system: its switches and what it saw."""

    switches: Switches = field(default_factory=Switches)
    url: str = ""
    requested: list[int] = field(default_factory=list)  # list page numbers asked for, in order
    in_flight: int = 0
    max_in_flight: int = 0
    tokens: set[str] = field(default_factory=set)
    postbacks: int = 0
    loads: int = 0  # postback pages loaded afresh (GET), not posted back

    @property
    def pages(self) -> int:
        return -(-self.switches.records // self.switches.size)

    @property
    def first(self) -> int:
        return 0 if self.switches.zero_based else 1

    def reset(self, **switches: Any) -> None:
        """Switch to another paging shape, with nothing seen yet."""
        self.switches = Switches(**switches)
        self.requested.clear()
        self.max_in_flight = self.postbacks = self.loads = 0

    async def settled(self, quiet_s: float = 0.06) -> None:
        """Wait until no request of the last walk is still arriving: a walk that ends may leave a
        prefetch of a page past the end on the wire, which must not count for the next case."""
        seen = -1
        while self.in_flight or seen != len(self.requested):
            seen = len(self.requested)
            await asyncio.sleep(quiet_s)

    def ids(self) -> list[str]:
        return [record_no(i) for i in range(self.switches.records)]

    def declared(self, concurrency: int = 2, retries: int = 1) -> System:
        return System(
            name="lists",
            title="列表测试系统",
            base_url=self.url,
            home="/home",
            logged_in="#current-user",
            login=FormLogin(username="#username", password="#password", submit="#login-button"),
            politeness=Politeness(concurrency=concurrency, rate=500, retries=retries),
        )


def record_no(i: int) -> str:
    return f"R{i:05d}"


def list_app(system: ListSystem) -> FastAPI:
    app = FastAPI()

    def logged_in(request: Request) -> bool:
        return request.cookies.get("sid") in system.tokens

    @app.get("/login")
    async def login_form() -> Response:
        return _html(
            '<form method="post" action="/login"><input id="username" name="username">'
            '<input id="password" name="password" type="password">'
            '<button type="submit" id="login-button">登录</button></form>'
        )

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        if (form.get("username"), form.get("password")) != (USERNAME, PASSWORD):
            return _html('<p class="error">用户名或密码错误</p>')
        token = secrets.token_hex(8)
        system.tokens.add(token)
        reply = RedirectResponse("/home", status_code=303)
        reply.set_cookie("sid", token)
        return reply

    @app.get("/home")
    async def home(request: Request) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=302)
        return _html(f'<span id="current-user">{USERNAME}</span>')

    @app.get("/index")
    async def index(request: Request) -> Response:
        return _html("<h1>首页</h1><p>欢迎使用</p>")

    @app.get("/list")
    async def listing(request: Request, page: int, size: int = 0) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=302)
        system.requested.append(page)
        system.in_flight += 1
        system.max_in_flight = max(system.max_in_flight, system.in_flight)
        try:
            await asyncio.sleep(system.switches.delay)
        finally:
            system.in_flight -= 1
        index = page - system.first
        if not system.switches.endless and index >= system.pages:
            if system.switches.past_end == "redirect":
                return RedirectResponse(f"/list?page={system.first}", status_code=302)
            if system.switches.past_end == "index":
                return RedirectResponse("/index", status_code=302)
            if system.switches.past_end == "first":
                index = 0
        return _html(_list_page(system, index))

    @app.get("/api/list")
    async def api(request: Request, pageNum: int, pageSize: int) -> Response:
        if not logged_in(request):
            return JSONResponse({"code": 401}, status_code=401)
        index = 0 if system.switches.api_ignores_page else pageNum - 1
        rows = [{"no": record_no(i), "name": f"名{i}"} for i in _span(system, index, pageSize)]
        return JSONResponse({"total": system.switches.records, "rows": rows})

    @app.get("/export.xlsx")
    async def export(request: Request) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=302)
        rows = [(record_no(i), f"名{i}") for i in range(system.switches.records)]
        sheet = io.BytesIO()
        pd.DataFrame(rows, columns=list(COLUMNS)).to_excel(sheet, index=False)
        return Response(sheet.getvalue(), media_type=XLSX)

    @app.api_route("/postback", methods=["GET", "POST"])
    async def postback(request: Request) -> Response:
        if not logged_in(request):
            return RedirectResponse("/login", status_code=302)
        index = 0
        system.loads += request.method == "GET"
        if request.method == "POST":
            argument = str((await request.form()).get("__EVENTARGUMENT", ""))
            index = int(argument.removeprefix("Page$")) - 1
        if system.switches.failing == index + 1 and system.switches.fails:
            system.switches.fails -= 1
            if system.switches.dropping:
                return StreamingResponse(_dropped(), media_type="text/html")
            return HTMLResponse("<h1>系统繁忙，请稍后再试</h1>", status_code=500)
        system.postbacks += 1
        if system.switches.expire_after is not None and system.postbacks > system.switches.expire_after:
            system.switches.expire_after = None
            system.tokens.clear()  # the session ends; the next request goes to the login page
        return _html(_postback_page(system, index))

    @app.get("/framed")
    async def framed(request: Request) -> Response:
        return _html('<h1>业务办理</h1><iframe id="work" src="/postback" width="800" height="600"></iframe>')

    return app


async def _dropped() -> AsyncIterator[bytes]:
    """The start of a page, then the connection closes: what a client sees when a proxy drops it."""
    yield b"<html><body><h1>"
    raise ConnectionAbortedError("the list system dropped the connection, as asked")


def _span(system: ListSystem, index: int, size: int) -> range:
    if system.switches.endless:
        return range(index * size, (index + 1) * size)
    return range(index * size, min((index + 1) * size, system.switches.records))


def _rows(system: ListSystem, index: int) -> str:
    rows = "".join(
        f"<tr><td>{record_no(i)}</td><td>名{i}</td></tr>" for i in _span(system, index, system.switches.size)
    )
    return (
        f"<table class='grid'><thead><tr><th>编号</th><th>名称</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _list_page(system: ListSystem, index: int) -> str:
    sw = system.switches
    body = _rows(system, index)
    stated = sw.records if sw.stated is None else sw.stated
    if stated:
        body += f"<div class='info'>共 {stated} 条</div>"
    if sw.pager:
        claimed = sw.pager_pages or system.pages
        shown = min(claimed, sw.window or claimed)
        links = [
            f"<span class='on'>{n}</span>"
            if n - 1 == index
            else f"<a href='?page={n - 1 + system.first}'>{n}</a>"
            for n in range(1, shown + 1)
        ]
        if sw.last_link:
            links.append(f"<a href='/list?page={claimed - 1 + system.first}'>末页</a>")
        body += f"<div class='pages'>{''.join(links)}</div>"
    return body


def _postback_page(system: ListSystem, index: int) -> str:
    """A page as ASP.NET WebForms draws a GridView: the pager posts the form back, no URL says the page."""
    if index + 1 < system.pages:
        next_link = f"<a id='next' href=\"javascript:__doPostBack('gvList','Page${index + 2}')\">下一页</a>"
    else:
        next_link = "<a id='next' class='aspNetDisabled'>下一页</a>"
    stamp = f"<p>生成于 {time.perf_counter_ns()}</p>" if system.switches.stamped else ""
    return (
        "<form method='post' id='form1'><input type='hidden' name='__EVENTTARGET' id='__EVENTTARGET'>"
        "<input type='hidden' name='__EVENTARGUMENT' id='__EVENTARGUMENT'>"
        f"<input type='hidden' name='__VIEWSTATE' value='{secrets.token_hex(6)}'>"
        f"{_rows(system, index)}<div class='pager'>第 {index + 1} 页 {next_link}</div>{stamp}</form>"
        "<script>function __doPostBack(t, a) { var f = document.getElementById('form1');"
        " f.__EVENTTARGET.value = t; f.__EVENTARGUMENT.value = a; f.submit(); }</script>"
    )


def _html(body: str) -> Response:
    return HTMLResponse(f"<!doctype html><html><body>{body}</body></html>")


@dataclass
class Walked:
    """What a walk yielded and said: the record numbers, the records it expected, how it failed."""

    ids: list[str]
    expected: int | None
    error: HarvestFailure | None
    walk: Walk
    warnings: list[str]


@asynccontextmanager
async def logged_in(system: ListSystem, *, concurrency: int = 2, retries: int = 1) -> AsyncIterator[Session]:
    """A real session on ``system``, logged in through the real login code, in a Chromium of its own."""
    declared = system.declared(concurrency, retries)
    async with async_playwright() as playwright:
        browser = await launch_browser(playwright, load_settings())
        session = Session(
            browser,
            declared,
            lambda: Credentials(USERNAME, Secret("password", PASSWORD)),
            polite=Polite(declared.politeness, name=declared.name),
            solver=SolverChain(),
        )
        try:
            await session.open()
            yield session
        finally:
            await session.close()
            await browser.close()


async def walked(
    session: Session, robot: Callable[[Walk], AsyncIterator[dict[str, Any]]], *, max_pages: int | None = None
) -> Walked:
    """Run ``robot`` over a new ``Walk`` of ``session``, as the runner would."""
    walk = Walk(
        session,
        run_id=uuid.uuid4().hex,
        account=USERNAME,
        scope="测试社区",
        settings=load_settings(),
        max_pages=max_pages,
    )
    ids: list[str] = []
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING", format="{message}")
    try:
        async for row in robot(walk):
            ids.append(row["no"])
    except HarvestFailure as exc:
        return Walked(ids, walk.expected, exc, walk, warnings)
    finally:
        logger.remove(sink)
    return Walked(ids, walk.expected, None, walk, warnings)


def walk_once(
    system: ListSystem,
    robot: Callable[[Walk], AsyncIterator[dict[str, Any]]],
    *,
    max_pages: int | None = None,
    concurrency: int = 2,
) -> Walked:
    """Log in to ``system`` and run ``robot`` over a real ``Walk``, from synchronous code."""

    async def go() -> Walked:
        async with logged_in(system, concurrency=concurrency) as session:
            return await walked(session, robot, max_pages=max_pages)

    return run_blocking(go)
