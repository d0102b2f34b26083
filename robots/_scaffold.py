"""``harvest new``: look at a list page once, logged in, and say what robot would read it.

The looking is pure where it can be (``robots._scaffold_find``); ``explore`` here is the
one live part: it logs in through ``connectors.Session`` like any run (every password
submission counted in the account's ledger, anything unrecognised parks the account), fetches
and renders the list page, and hands what it saw to the finders.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from connectors import (
    Credentials,
    FormLogin,
    HarvestFailure,
    LoginLedger,
    LoginUnrecognised,
    MemoryLedger,
    OcrSolver,
    Polite,
    Session,
    SolverChain,
    System,
    TerminalSolver,
    launch_browser,
    start_playwright,
)
from machine import run_blocking
from robots._page import Page
from robots._scaffold_fields import from_headers, from_json
from robots._scaffold_find import (
    API_SIZE,
    PROVISIONAL_PROOF,
    SAMPLE_PAGES,
    SETTLE_MS,
    Api,
    Captured,
    Found,
    Listing,
    Table,
    find_api,
    find_cards,
    find_pager,
    find_table,
    has_captcha,
    json_titles,
    proof_selector,
    split_url,
)
from settings import Settings
from vault import Vault


@dataclass(frozen=True)
class Asked:
    """What ``harvest new`` was given."""

    name: str
    login_url: str
    list_url: str
    title: str | None = None
    account: str = "ACCOUNT"


def scout(asked: Asked, settings: Settings, vault: Vault | None, typed: Credentials | None) -> Found:
    """``explore`` with the vault's account (its secrets read audited, its ledger counting every
    submission, parked when the login says so) or, without a vault, credentials typed just now."""
    ledger: LoginLedger | None = None
    if vault is not None:
        info = vault.get(asked.name, asked.account)
        ledger = vault.login_ledger(asked.name, asked.account)

        def credentials() -> Credentials:
            secrets = vault.secrets(asked.name, asked.account, robot="harvest new", run_id="new")
            return Credentials(info.username, secrets.password, secrets.totp_seed)

    else:
        assert typed is not None, "credentials: from the vault, or typed"

        def credentials() -> Credentials:
            return typed

    try:
        return run_blocking(lambda: explore(asked, settings, credentials, ledger))  # type: ignore[no-any-return]
    except HarvestFailure as failure:
        if failure.parks and vault is not None:
            vault.park(asked.name, asked.account, kind=failure.kind, message=str(failure))
        raise


async def explore(
    asked: Asked, settings: Settings, credentials: Callable[[], Credentials], ledger: LoginLedger | None
) -> Found:
    """Log in once, read the list page (fetched and rendered) and say what was found."""
    base_url, login_path = split_url(asked.login_url)
    list_base, home = split_url(asked.list_url)
    if list_base != base_url:
        raise ValueError(f"登录页 {base_url} 和列表页 {list_base} 不在同一个系统：两个网址的主机和端口应相同")
    async with contextlib.AsyncExitStack() as stack:
        playwright = await start_playwright()
        stack.push_async_callback(playwright.stop)
        browser = await launch_browser(playwright, settings)
        stack.push_async_callback(browser.close)
        login_html = await _login_page(browser, asked.login_url)
        system = System(
            name=asked.name,
            title=asked.title or asked.name,
            base_url=base_url,
            home=urlsplit(home).path,
            logged_in=PROVISIONAL_PROOF,
            login=FormLogin(path=urlsplit(login_path).path),
            captcha="image" if has_captcha(login_html) else "none",
        )
        solver = SolverChain(
            OcrSolver(settings.captcha_attempts), TerminalSolver(Path(settings.data_dir) / "new")
        )
        session = Session(
            browser,
            system,
            credentials,
            account=asked.account,
            polite=Polite(system.politeness, name=system.name),
            solver=solver,
            ledger=ledger or MemoryLedger(),
        )
        stack.push_async_callback(session.close)
        await session.open()
        fetched = await _confirmed(session, home)
        rendered, captured = await _rendered(session, home)
        listing = await _listing(session, home, fetched, rendered, captured)
    fallback = listing.options.get("table") or listing.options.get("item") or "table"
    proof, checked = proof_selector(fetched, login_html, fallback)
    title = asked.title or _title(fetched, asked.name, last=True)
    return Found(
        name=asked.name,
        title=title,
        base_url=base_url,
        login_path=system.login_path,
        home=system.home,
        logged_in=proof,
        proof_checked=checked,
        captcha=system.captcha,
        listing=listing,
        list_title=_title(fetched, asked.name, last=False),
    )


async def _login_page(browser: Any, url: str) -> str:
    """The login page as an anonymous visitor's browser shows it (scripts may draw the form)."""
    context = await browser.new_context(locale="zh-CN")
    try:
        page = await context.new_page()
        await page.goto(url)
        with contextlib.suppress(Exception):
            await page.wait_for_load_state("networkidle", timeout=SETTLE_MS)
        return str(await page.content())
    finally:
        await context.close()


async def _confirmed(session: Session, path: str) -> str:
    """The list page's HTML, fetched; sent back to the login page means the login did not hold,
    which parks the account rather than send its password again."""
    system = session.system
    reply = await session.polite.fetch(lambda: session.request.get(system.url(path)), "列表页")
    if session.lost(reply.url, reply.status):
        raise LoginUnrecognised(
            f"{system.name}/{session.account}：登录后打开 {path} 又回到了登录页，登录并未成功："
            "为免账号被锁定，不再尝试。请先人工登录一次确认账号可用，然后运行 "
            f"`harvest vault set {system.name} {session.account} --password`，再运行 harvest new"
        )
    return str(await reply.text())


async def _rendered(session: Session, path: str) -> tuple[str, list[Captured]]:
    """The list page rendered, and the JSON its own scripts fetched while it loaded."""
    page = await session.page()
    replies: list[Any] = []

    def seen(response: Any) -> None:
        if response.request.resource_type in ("xhr", "fetch") and response.status < 300:
            replies.append(response)

    page.on("response", seen)
    try:
        await session.render(path)
        with contextlib.suppress(Exception):
            await page.wait_for_load_state("networkidle", timeout=SETTLE_MS)
        captured = []
        for response in replies:
            with contextlib.suppress(Exception):  # a body the page's navigation discarded
                captured.append(Captured(response.url, await response.text()))
        return await page.content(), captured
    finally:
        page.remove_listener("response", seen)


async def _listing(
    session: Session, home: str, fetched: str, rendered: str, captured: list[Captured]
) -> Listing:
    base, url = session.system.base_url, session.system.url(home)
    api = find_api(captured, base)
    if api is not None:
        return await _api_listing(session, api, find_table(rendered, url))
    for html, render in ((fetched, False), (rendered, True)):
        table = find_table(html, url)
        if table is not None and any(table.columns.values()):
            return await _table_listing(session, home, html, table, render)
    cards = find_cards(rendered, url)
    if cards is not None:
        item, button, columns = cards
        options = {"item": item} | ({"button": button} if button else {})
        listing = Listing(
            "load_more", home, options, from_headers(columns), len(next(iter(columns.values())))
        )
        listing.stated_total = Page(rendered, url).stated_total()
        if button is None:
            listing.notes.append("没有找到“加载更多”按钮：机器人将滚动到底部加载；若页面有按钮，请写 button")
        return listing
    raise LookupError(
        f"{url} 上没有找到带表头的表格、卡片列表或页面加载的 JSON 列表："
        "请用 harvest new --template 写一个模板，照着页面填写"
    )


async def _api_listing(session: Session, api: Api, table: Table | None) -> Listing:
    params: dict[str, Any] = {**api.params, api.page_param: 1, api.size_param: API_SIZE}
    reply = await session.fetch(api.path, params=params)
    items, size = api.items, api.size
    with contextlib.suppress(ValueError, KeyError, TypeError):
        sample = json.loads(reply.text)[api.rows]
        if len(sample) >= min(api.total, API_SIZE):  # the API gives as many as asked
            items, size = sample, API_SIZE
    options: dict[str, Any] = {
        "page_param": api.page_param,
        "size_param": api.size_param,
        "size": size,
        "rows": api.rows,
        "total": api.total_key,
    } | ({"params": api.params} if api.params else {})
    listing = Listing(
        "api", api.path, options, from_json(items, json_titles(api.items, table)), len(api.items)
    )
    listing.stated_total = api.total
    return listing


async def _table_listing(session: Session, home: str, html: str, table: Table, render: bool) -> Listing:
    url = session.system.url(home)
    pager = find_pager(html, url, session.system.base_url)
    columns = {header: list(values) for header, values in table.columns.items()}
    rows = len(next(iter(columns.values())))
    shape, options = pager or ("follow", {"next": 'a:has-text("下一页")'})
    path = options.pop("path", home)
    listing = Listing(shape, path, {"table": table.css, **options}, [], rows, table.stated_total)
    if pager is None:
        listing.notes.append("没有找到翻页栏：按只有一页写成了 follow；如有下一页链接，请改 next")
    if render or options.get("render"):
        listing.options |= {"render": True, "ready": f"{table.css} tbody tr"}
    elif (
        shape == "pages"
    ):  # more samples, from pages its pager links to: a column now and then empty is optional
        links = {urljoin(url, str(a.attributes.get("href"))) for a in Page(html, url).select(options["last"])}
        for link in sorted(links - {url})[: SAMPLE_PAGES - 1]:
            more = find_table((await session.fetch(link)).text, url)
            for header, values in (more.columns if more else {}).items():
                columns.get(header, []).extend(values)
    listing.fields = from_headers(columns)
    return listing


def _title(html: str, fallback: str, *, last: bool) -> str:
    """The page's ``<title>``: its last part names the system (人员信息 - 人口系统), its first the list."""
    node = LexborHTMLParser(html).css_first("title")
    parts = [p.strip() for p in re.split(r"\s+[-|–—_]\s+", node.text(strip=True))] if node else []
    parts = [p for p in parts if p]
    return (parts[-1] if last else parts[0]) if parts else fallback
