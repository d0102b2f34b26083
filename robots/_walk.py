"""What a robot's walk receives: one typed context with every way real systems hand out records.

- ``pages()``: numbered list pages, read without rendering (the fast path) or rendered;
- ``follow()``: a "下一页" link from page to page, read by its address or clicked;
- ``load_more()``: a "加载更多" button or infinite scroll, rendered;
- ``api_pages()`` and ``json()``: the system's own JSON API, through the logged-in session;
- ``capture_json()``: the JSON a page's own scripts load;
- ``excel()`` and ``download()``: an exported ``.xlsx`` report, read with pandas.

Every request goes through the session: polite, retried, and logged in again if the
system sends us back to its login page, after which the walk resumes where it stopped.
A list clicked through is retried the same way when a click brings an error page.

Every list walk ends, and ends at the real end (``robots._paging`` says how);
``walk.expected`` is what the pages said the walk should yield, for the runner to check.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urljoin

from loguru import logger
from playwright.async_api import Page as BrowserPage

from connectors import (
    Fetched,
    Fetcher,
    LayoutChanged,
    NeedsHuman,
    Session,
    SessionRenewed,
    SystemUnavailable,
)
from robots._mapping import Columns
from robots._page import Page, Tally, rename
from robots._paging import (
    Listing,
    Numbering,
    address,
    clicked,
    fetch_ahead,
    grew,
    item_prints,
    page_count,
    same_page,
    where,
    zero_based,
)
from robots._postback import postback, postback_request
from robots._stream import streamed
from settings import Settings


class NeedsBrowser(RuntimeError):
    """A walk step that renders pages, asked of a fetcher without a browser (a replay)."""


class Walk:
    """One run's view of the system: what it reads through, the run id, the account's scope and a logger.

    ``fetcher`` is the logged-in ``Session`` in a run; a replay or a test's fake serves every
    method that reads without rendering.
    """

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        run_id: str,
        account: str,
        scope: str,
        settings: Settings,
        on_page: Callable[[], None] = lambda: None,
        max_pages: int | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.run_id = run_id
        self.account = account
        self.scope = scope
        self.settings = settings
        self.max_pages = max_pages  # pages one list may have; None: HARVEST_MAX_PAGES
        self.log = logger.bind(run=run_id[:8])
        self.pages_read = 0
        self.last_url = ""  # the latest page or response read: saved as evidence when the layout drifts
        self.last_body = ""
        self.tally = Tally()  # the rows every page of this walk mapped, dropped or saw said empty
        self._listings: list[Listing] = []  # every list walked, with the record count its pages stated
        self._on_page = on_page

    def __repr__(self) -> str:
        return f"Walk({self.fetcher.system.name}/{self.account}, run={self.run_id[:8]})"

    @property
    def session(self) -> Session:
        """The logged-in browser session, which rendered pages and clicks need."""
        if not isinstance(self.fetcher, Session):
            raise NeedsBrowser(
                f"这一步要在浏览器里渲染页面，而本次读取方式（{type(self.fetcher).__name__}）不带浏览器："
                "回放只支持不渲染的读取（pages/follow 不带 render=True、api_pages、json、excel）"
            )
        return self.fetcher

    @property
    def expected(self) -> int | None:
        """The records the system says the walk should yield: each list's latest stated total, summed."""
        stated = [listing.total for listing in self._listings if listing.total is not None]
        return sum(stated) if stated else None

    def _listing(self, path: str) -> Listing:
        listing = Listing(path, cap=self.max_pages or self.settings.max_pages, log=self.log, taken=self._take)
        self._listings.append(listing)
        return listing

    async def page(self) -> BrowserPage:
        """The Playwright page of this walk, for what the helpers below do not cover."""
        return await self.session.page()

    @streamed
    async def pages(
        self,
        path: str,
        *,
        last: str | None = None,
        render: bool = False,
        start: int | None = None,
        ready: str | None = None,
    ) -> AsyncIterator[Page]:
        """Numbered pages: ``path`` holds ``{n}`` where the page number goes.

        With ``last`` (a CSS selector over the pager) the page count is read from the first page
        (its page numbers, where its links go, and its stated total over its rows) and the pages
        are fetched concurrently, within the system's politeness; then the next page is read to
        confirm the list ends there. Without it, a few pages are fetched ahead and the walk ends
        at the first page with no rows. Pages number from 0 or 1 as the first page's links show,
        unless ``start`` says. ``render=True`` loads each page in Chromium (and waits for
        ``ready``), one at a time, instead of reading its HTML directly.
        """
        numbering = Numbering(self.fetcher.system.url(path))
        listing = self._listing(path)
        fetched: dict[int, Page] = {}  # page 1 of a list found to number from 0, read before page 0

        async def read(n: int) -> Page:
            if n in fetched:
                return fetched.pop(n)
            return await self._read(numbering.at(n), n, render=render, ready=ready)

        first = await read(1 if start is None else start)
        if start is None:
            start = 0 if zero_based(first, numbering) else 1
            if start == 0:
                fetched[1], first = first, await read(0)
        if not numbering.holds(first):
            raise LayoutChanged(
                f"{path}：第 {first.number} 页被转到了 {where(first.url)}：列表的地址可能已变化"
            )
        yield listing.take(first)
        listing.repeats(first.fingerprints, first.number)
        window = 0 if render else self.fetcher.polite.politeness.concurrency
        if last is None:
            if not first.rows:
                listing.ended(f"page {first.number} has no rows")
                return
            rest = listing.to_the_end(numbering, itertools.count(start + 1), read, window=window)
        else:
            count = page_count(first, last, numbering, start)
            if count > listing.cap:
                raise listing.too_long(f"翻页栏显示共 {count} 页")
            rest = listing.counted(numbering, range(start + 1, start + count), read, window=2 * window)
        async with contextlib.aclosing(rest) as pages:
            async for page in pages:
                yield page

    @streamed
    async def follow(
        self,
        path: str,
        *,
        next: str,
        render: bool = False,
        ready: str | None = None,
        frame: str | None = None,
    ) -> AsyncIterator[Page]:
        """Pages linked by a "下一页" link that ``next`` selects.

        Without rendering, the walk fetches where the link goes; a ``javascript:__doPostBack(...)``
        link (ASP.NET WebForms) is followed by posting the page's form, as the click would. ``next``
        may say ``:has-text('下一页')`` either way. With ``render=True`` it clicks the
        link in Chromium, as ``javascript:__doPostBack(...)`` pagers need, waits for the list to
        change (and for ``ready``), and reads it; ``frame`` selects the ``<iframe>`` the list lives
        in. The walk ends where the link is absent or disabled, a click changes nothing, a page
        repeats earlier rows or goes back to an address read before. A click answered with an
        error page (5xx, a dropped connection) is retried with backoff, within the system's
        ``retries``, and the walk goes on from where it was.
        """
        if frame is not None and not render:
            raise ValueError("follow(frame=...)：<iframe> 里的列表须渲染后读取：请传入 render=True")
        listing = self._listing(path)
        if render:
            pages = clicked(self.session, listing, next=next, ready=ready, frame=frame, tally=self.tally)
        else:
            pages = self._linked(listing, path, next=next)
        async with contextlib.aclosing(pages) as walk:
            async for page in walk:
                yield page

    async def _linked(self, listing: Listing, path: str, *, next: str) -> AsyncIterator[Page]:
        """Pages of a "下一页" link, fetched where it goes; a ``__doPostBack`` link by posting its form."""
        read: set[tuple[str, str, frozenset[tuple[str, str]]]] = set()
        url, form = self.fetcher.system.url(path), None
        while True:
            if form is None and address(url) in read:
                listing.ended(f"the next link of page {listing.pages} goes back to {where(url)}, read before")
                return
            try:
                page = await self._read(url, listing.pages + 1, render=False, ready=None, form=form)
            except SessionRenewed:  # the form held the ended session's view state
                page = await self._posted_again(path, next=next, number=listing.pages + 1)
            if form is None and address(page.url) in read:
                listing.ended(f"page {page.number} redirected to {where(page.url)}, read before")
                return
            read |= {address(url), address(page.url)}
            yield listing.take(page)
            if listing.repeats(page.fingerprints, page.number):
                listing.ended(f"page {page.number} repeats earlier rows")
                return
            link = page.first(next)
            href = (link.attributes.get("href") or "").strip() if link is not None else ""
            if link is None or not href or "disabled" in link.attributes:
                listing.ended(f"page {page.number} has no next link")
                return
            if listing.pages >= listing.cap:
                raise listing.too_long()
            event = postback(href)
            if event is not None:
                url, form = postback_request(page, link, *event)
            elif href.lower().startswith("javascript:"):
                raise LayoutChanged(
                    f"{path}：第 {page.number} 页的下一页链接是脚本（{href[:60]}）："
                    "请改用 follow(..., render=True) 读取"
                )
            else:
                url, form = urljoin(page.url, href), None

    async def _posted_again(self, path: str, *, next: str, number: int) -> Page:
        """Page ``number`` of a postback list, reached again from its first page in the new session."""
        self.log.info("{}：重新登录后从第 1 页起重新翻到第 {} 页", path, number)
        page = await self._read(self.fetcher.system.url(path), 1, render=False, ready=None)
        for n in range(2, number + 1):
            link = page.first(next)
            event = postback((link.attributes.get("href") or "").strip()) if link is not None else None
            if link is None or event is None:
                raise LayoutChanged(f"{path}：重新登录后翻到第 {n - 1} 页就没有下一页了：列表可能已变化")
            url, form = postback_request(page, link, *event)
            page = await self._read(url, n, render=False, ready=None, form=form)
        return page

    @streamed
    async def load_more(
        self, path: str, *, item: str, button: str | None = None, ready: str | None = None
    ) -> AsyncIterator[Page]:
        """Items revealed by a "加载更多" ``button`` (or, without one, by scrolling to the bottom).

        Each page yielded holds only items not yielded before. If the list stops growing (a
        failed request, a lost session), the page is reloaded, revealed up to where the walk
        was, and the walk goes on; items already yielded are known by their HTML and skipped.
        """
        yielded: set[int] = set()
        cursor = stalls = 0  # items of the current page load already looked at
        retries = self.fetcher.polite.politeness.retries
        login = self.fetcher.system.login_path
        browser_page = await self._open(path, ready=ready, items=item, at_least=0, button=button)
        while True:
            shown = await browser_page.eval_on_selector_all(
                item, "(nodes, from) => nodes.slice(from).map(n => n.outerHTML)", cursor
            )
            cursor += len(shown)
            fresh = []
            for html in shown:  # a page's own script can append one batch twice, too
                if hash(html) not in yielded:
                    yielded.add(hash(html))
                    fresh.append(html)
            if fresh:
                stalls = 0
                yield self._page("<div>" + "".join(fresh) + "</div>", browser_page.url, None)
            lost = self.session.lost(browser_page.url, 200)
            if not lost:
                if button is not None and not await browser_page.locator(button).is_visible():
                    return
                async with self.fetcher.polite.slot():
                    if button is not None:
                        await browser_page.click(button)
                    else:
                        await browser_page.mouse.wheel(0, 10_000)
                if await grew(browser_page, item, cursor, login):
                    continue
                lost = self.session.lost(browser_page.url, 200)
                if button is None and not lost:
                    return  # scrolling revealed nothing more: the end of an infinite list
            stalls += 1
            if stalls > retries:
                raise SystemUnavailable(f"{path}：列表读到 {len(yielded)} 项后不再增长：稍后会自动重试")
            why = "会话已结束" if lost else "列表不再增长"
            self.log.warning("{}：读到 {} 项时{}，重新加载后接着读", path, len(yielded), why)
            browser_page = await self._open(
                path, ready=ready, items=item, at_least=len(yielded), button=button
            )
            cursor = 0

    async def json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The JSON the system's API answers at ``path``, through the logged-in session."""
        reply = await self.fetcher.fetch(path, params=params)
        self._check(reply, path)
        self._note(reply.url, reply.text)
        try:
            return json.loads(reply.text)
        except ValueError as exc:
            raise LayoutChanged(f"{path} 返回的不是 JSON（{exc}）：系统的接口可能已变化") from exc

    async def api_pages(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        page_param: str = "pageNum",
        size_param: str = "pageSize",
        size: int = 100,
        rows: str = "rows",
        total: str = "total",
        fields: Columns | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a paged JSON list API (``{total, rows}``, as RuoYi-style back ends answer).

        ``fields`` (the record class, or a ``{key: field}`` mapping) reads the API's keys into the
        record's fields, each by its name, camelCase, title or an alias; a key that is missing is drift.
        The walk ends at the page ``total`` makes the last, or at an empty page before it; a page
        repeating earlier items means the API does not read ``page_param``: drift.
        """
        listing = self._listing(path)

        async def read(n: int) -> tuple[int, list[Any]]:
            body = await self.json(path, {**(params or {}), page_param: n, size_param: size})
            if not isinstance(body, dict) or rows not in body or total not in body:
                raise LayoutChanged(f"{path} 的答复缺少 '{rows}' 或 '{total}'：系统的接口可能已变化")
            self.pages_read += 1
            self._on_page()
            return int(body[total]), list(body[rows] or [])

        def records(items: list[Any]) -> list[dict[str, Any]]:
            return [rename(i, fields, path) for i in items] if fields else items

        count, items = await read(1)
        listing.stated(count)
        if count == 0 and not items:
            self.tally.said_empty = True  # the API's own count: as positive as an empty table
        listing.repeats(item_prints(items), 1)
        pages = math.ceil(count / size)
        if pages > listing.cap:
            raise listing.too_long(f"按总数 {count} 条算共 {pages} 页")
        yield records(items)
        window = 2 * self.fetcher.polite.politeness.concurrency
        async with contextlib.aclosing(fetch_ahead(range(2, pages + 1), read, window=window)) as ahead:
            number = 1
            async for count, items in ahead:
                number += 1
                listing.stated(count)
                if not items:
                    listing.ended(f"page {number} is empty")
                    return
                if listing.repeats(item_prints(items), number):
                    raise LayoutChanged(
                        f"{path}：第 {number} 页重复了前面各页的条目：系统的接口可能不把 {page_param!r} "
                        "当作页码"
                    )
                yield records(items)
        listing.ended(f"it is the last of the {count} records the API counts")

    async def capture_json(self, path: str, match: str) -> Any:
        """Load ``path`` rendered and return the JSON of the first response whose URL contains ``match``."""
        retries = self.fetcher.polite.politeness.retries
        for _ in range(retries + 1):
            generation = self.session.generation
            browser_page = await self.session.page()
            async with browser_page.expect_response(lambda r: match in r.url) as captured:
                await self.session.render(path)
            response = await captured.value
            if response.status == 401:
                await self.session.relogin(generation)
                continue
            if response.status >= 500:
                continue
            text = await response.text()
            self._note(response.url, text)
            return json.loads(text)
        raise SystemUnavailable(f"{path}：请求 {match} 一再失败：系统可能暂时不可用，稍后会自动重试")

    async def download(self, path: str) -> bytes:
        """The bytes of a report the system exports at ``path`` (through the logged-in session)."""
        reply = await self.fetcher.fetch(path)
        self._check(reply, path)
        self.pages_read += 1
        self._on_page()
        return reply.body

    async def excel(self, path: str, columns: Columns, *, sheet: int | str = 0) -> list[dict[str, Any]]:
        """The rows of an exported ``.xlsx``, its headers read into fields by ``columns`` (the record class,
        or a ``{header: field}`` mapping)."""
        import pandas as pd  # most of a second at start-up: only for a robot that reads an export

        data = await self.download(path)
        try:
            frame = pd.read_excel(io.BytesIO(data), sheet_name=sheet, dtype=str)
        except ValueError as exc:
            raise LayoutChanged(f"{path} 不是可读的 .xlsx 报表（{exc}）：系统的导出格式可能已变化") from exc
        self._note(path, frame.head(20).to_csv(index=False))
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        if not records:  # the headers, and no rows under them: the system says the list is empty
            _check_headers(list(frame.columns), columns, path)
            self.tally.said_empty = True
        return [rename(row, columns, path) for row in records]

    async def _read(
        self,
        path: str,
        number: int | None,
        *,
        render: bool,
        ready: str | None,
        form: Mapping[str, str] | None = None,
    ) -> Page:
        """One list page, not yet taken: a page fetched ahead may be discarded unseen."""
        if render:
            browser_page = await self.session.render(path)
            if ready is not None and same_page(self.fetcher.system.url(path), browser_page.url):
                await browser_page.wait_for_selector(ready)  # a page sent elsewhere may never show it
            html, url = await browser_page.content(), browser_page.url
        else:
            reply = await self.fetcher.fetch(path, form=form)
            self._check(reply, path)
            html, url = reply.text, reply.url
        return Page(html, url, number, self.tally)

    def _take(self, page: Page) -> Page:
        """A page the walk hands to the robot: counted, and kept as the evidence if it drifted."""
        self.pages_read += 1
        self._on_page()
        self._note(page.url, page.html)
        return page

    def _page(self, html: str, url: str, number: int | None) -> Page:
        self._note(url, html)
        return Page(html, url, number, self.tally)

    async def _open(
        self, path: str, *, ready: str | None, items: str, at_least: int, button: str | None = None
    ) -> BrowserPage:
        """Render ``path`` and reveal items until more than ``at_least`` are on the page."""
        browser_page = await self.session.render(path)
        if ready is not None:
            await browser_page.wait_for_selector(ready)
        login = self.fetcher.system.login_path
        while at_least and (shown := await browser_page.locator(items).count()) <= at_least:
            if button is not None and not await browser_page.locator(button).is_visible():
                break  # the list is shorter now than when we saw it: the caller yields what there is
            async with self.fetcher.polite.slot():
                if button is not None:
                    await browser_page.click(button)
                else:
                    await browser_page.mouse.wheel(0, 10_000)
            if not await grew(browser_page, items, shown, login):
                break
        return browser_page

    def _check(self, reply: Fetched, path: str) -> None:
        if reply.status == 403:
            raise NeedsHuman(
                f"{path} 返回 403：该账号可能已无权查看这些记录；请向该系统的管理员确认账号的权限"
            )
        if reply.status >= 400:
            self._note(reply.url, reply.text)
            raise LayoutChanged(f"{path} 返回 HTTP {reply.status}：系统的地址可能已变化")

    def _note(self, url: str, body: str) -> None:
        self.last_url, self.last_body = url, body


def _check_headers(headers: list[str], columns: Columns, where: str) -> None:
    rename(dict.fromkeys(headers), columns, where)
