"""What a robot's walk receives: one typed context with every way real systems hand out records.

- ``pages()``: numbered list pages, read without rendering (the fast path) or rendered;
- ``follow()``: a "下一页" link from page to page;
- ``load_more()``: a "加载更多" button or infinite scroll, rendered;
- ``api_pages()`` and ``json()``: the system's own JSON API, through the logged-in session;
- ``capture_json()``: the JSON a page's own scripts load;
- ``excel()`` and ``download()``: an exported ``.xlsx`` report, read with pandas.

Every request goes through the session: polite, retried, and logged in again if the
system sends us back to its login page, after which the walk resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urljoin

import pandas as pd
from loguru import logger
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page as BrowserPage

from connectors import LayoutChanged, NeedsHuman, Session, SystemUnavailable
from connectors._session import Fetched
from robots._page import Page, rename
from settings import Settings

T = TypeVar("T")
GROWTH_TIMEOUT_MS = 10_000  # how long a "load more" may take before we try again


class Walk:
    """One run's view of the system: the session, the run id, the account's scope and a logger."""

    def __init__(
        self,
        session: Session,
        *,
        run_id: str,
        account: str,
        scope: str,
        settings: Settings,
        on_page: Callable[[], None] = lambda: None,
    ) -> None:
        self.session = session
        self.run_id = run_id
        self.account = account
        self.scope = scope
        self.settings = settings
        self.log = logger.bind(run=run_id[:8])
        self.pages_read = 0
        self.last_url = ""  # the latest page or response read: saved as evidence when the layout drifts
        self.last_body = ""
        self._on_page = on_page

    def __repr__(self) -> str:
        return f"Walk({self.session.system.name}/{self.account}, run={self.run_id[:8]})"

    async def page(self) -> BrowserPage:
        """The Playwright page of this walk, for what the helpers below do not cover."""
        return await self.session.page()

    async def pages(
        self,
        path: str,
        *,
        last: str | None = None,
        render: bool = False,
        start: int = 1,
        ready: str | None = None,
    ) -> AsyncIterator[Page]:
        """Numbered pages: ``path`` holds ``{n}`` where the page number goes.

        With ``last`` (a CSS selector over the pager's page numbers) the page count is read from
        the first page and the rest are fetched concurrently, within the system's politeness;
        without it, pages are read one by one until one yields no rows. ``render=True`` loads
        each page in Chromium (and waits for ``ready``) instead of reading its HTML directly.
        """
        if "{n}" not in path:
            raise ValueError(f"pages({path!r}): put {{n}} where the page number goes, e.g. /list?page={{n}}")
        first = await self._read(path.format(n=start), start, render=render, ready=ready)
        yield first
        if last is not None:
            final = _last_page_number(first, last)
            numbers = range(start + 1, final + 1)
            fetch = lambda n: self._read(path.format(n=n), n, render=render, ready=ready)  # noqa: E731
            async for page in self._ahead(numbers, fetch, concurrent=not render):
                yield page
            return
        page, number = first, start
        while page.rows:
            number += 1
            page = await self._read(path.format(n=number), number, render=render, ready=ready)
            yield page

    async def follow(
        self, path: str, *, next: str, render: bool = False, ready: str | None = None
    ) -> AsyncIterator[Page]:
        """Pages linked by a "下一页" link: ``next`` selects it; the walk ends where it is absent."""
        url: str | None = path
        number = 1
        while url is not None:
            page = await self._read(url, number, render=render, ready=ready)
            yield page
            link = page.tree.css_first(next)
            href = link.attributes.get("href") if link is not None else None
            url = urljoin(page.url, href) if href else None
            number += 1

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
        retries = self.session.polite.politeness.retries
        login = self.session.system.login_path
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
                async with self.session.polite.slot():
                    if button is not None:
                        await browser_page.click(button)
                    else:
                        await browser_page.mouse.wheel(0, 10_000)
                if await _grew(browser_page, item, cursor, login):
                    continue
                lost = self.session.lost(browser_page.url, 200)
                if button is None and not lost:
                    return  # scrolling revealed nothing more: the end of an infinite list
            stalls += 1
            if stalls > retries:
                raise SystemUnavailable(f"{path}: the list stopped growing after {len(yielded)} items")
            why = "the session ended" if lost else "the list stopped growing"
            self.log.warning("{}: {} at {} items; reloading and resuming", path, why, len(yielded))
            browser_page = await self._open(
                path, ready=ready, items=item, at_least=len(yielded), button=button
            )
            cursor = 0

    async def json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The JSON the system's API answers at ``path``, through the logged-in session."""
        reply = await self.session.fetch(path, params=params)
        self._check(reply, path)
        self._note(reply.url, reply.text)
        try:
            return json.loads(reply.text)
        except ValueError as exc:
            raise LayoutChanged(
                f"{path} did not answer JSON ({exc}): the system's API may have changed"
            ) from exc

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
        fields: Mapping[str, str] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a paged JSON list API (``{total, rows}``, as RuoYi-style back ends answer).

        ``fields`` renames the API's keys to the record's fields; a key that is missing is drift.
        """

        async def read(n: int) -> tuple[int, list[dict[str, Any]]]:
            body = await self.json(path, {**(params or {}), page_param: n, size_param: size})
            if not isinstance(body, dict) or rows not in body or total not in body:
                raise LayoutChanged(
                    f"{path} answered without '{rows}' and '{total}': the API may have changed"
                )
            self.pages_read += 1
            self._on_page()
            items = body[rows] or []
            return int(body[total]), [rename(i, fields, path) for i in items] if fields else list(items)

        count, items = await read(1)
        yield items
        async for _, items in self._ahead(range(2, math.ceil(count / size) + 1), read):
            yield items

    async def capture_json(self, path: str, match: str) -> Any:
        """Load ``path`` rendered and return the JSON of the first response whose URL contains ``match``."""
        retries = self.session.polite.politeness.retries
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
        raise SystemUnavailable(f"{path}: the request {match} kept failing")

    async def download(self, path: str) -> bytes:
        """The bytes of a report the system exports at ``path`` (through the logged-in session)."""
        reply = await self.session.fetch(path)
        self._check(reply, path)
        self.pages_read += 1
        self._on_page()
        return reply.body

    async def excel(
        self, path: str, *, columns: Mapping[str, str], sheet: int | str = 0
    ) -> list[dict[str, Any]]:
        """The rows of an exported ``.xlsx``, its header texts mapped to fields by ``columns``."""
        data = await self.download(path)
        try:
            frame = pd.read_excel(io.BytesIO(data), sheet_name=sheet, dtype=str)
        except ValueError as exc:
            raise LayoutChanged(f"{path} is not a readable .xlsx report ({exc})") from exc
        self._note(path, frame.head(20).to_csv(index=False))
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        if not records:
            _check_headers(list(frame.columns), columns, path)
        return [rename(row, columns, path) for row in records]

    async def _read(self, path: str, number: int | None, *, render: bool, ready: str | None) -> Page:
        if render:
            browser_page = await self.session.render(path)
            if ready is not None:
                await browser_page.wait_for_selector(ready)
            html, url = await browser_page.content(), browser_page.url
        else:
            reply = await self.session.fetch(path)
            self._check(reply, path)
            html, url = reply.text, reply.url
        self.pages_read += 1
        self._on_page()
        return self._page(html, url, number)

    def _page(self, html: str, url: str, number: int | None) -> Page:
        self._note(url, html)
        return Page(html, url, number)

    async def _open(
        self, path: str, *, ready: str | None, items: str, at_least: int, button: str | None = None
    ) -> BrowserPage:
        """Render ``path`` and reveal items until more than ``at_least`` are on the page."""
        browser_page = await self.session.render(path)
        if ready is not None:
            await browser_page.wait_for_selector(ready)
        login = self.session.system.login_path
        while at_least and (shown := await browser_page.locator(items).count()) <= at_least:
            if button is not None and not await browser_page.locator(button).is_visible():
                break  # the list is shorter now than when we saw it: the caller yields what there is
            async with self.session.polite.slot():
                if button is not None:
                    await browser_page.click(button)
                else:
                    await browser_page.mouse.wheel(0, 10_000)
            if not await _grew(browser_page, items, shown, login):
                break
        return browser_page

    def _check(self, reply: Fetched, path: str) -> None:
        if reply.status == 403:
            raise NeedsHuman(
                f"{path} answered 403: the account may no longer see these records; ask the system's "
                "administrator about its permissions"
            )
        if reply.status >= 400:
            self._note(reply.url, reply.text)
            raise LayoutChanged(
                f"{path} answered HTTP {reply.status}: the system's addresses may have changed"
            )

    def _note(self, url: str, body: str) -> None:
        self.last_url, self.last_body = url, body

    async def _ahead(
        self, numbers: Iterable[int], fetch: Callable[[int], Awaitable[T]], *, concurrent: bool = True
    ) -> AsyncIterator[T]:
        """``fetch(n)`` for each number, a few ahead at once, yielded in order."""
        window = 2 * self.session.polite.politeness.concurrency if concurrent else 1
        todo = iter(numbers)
        pending: deque[asyncio.Task[T]] = deque()

        def top_up() -> None:
            while len(pending) < window and (n := next(todo, None)) is not None:
                pending.append(asyncio.ensure_future(fetch(n)))

        top_up()
        try:
            while pending:
                result = await pending.popleft()
                top_up()
                yield result
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def _check_headers(headers: list[str], columns: Mapping[str, str], where: str) -> None:
    rename(dict.fromkeys(headers), {h: h for h in columns}, where)


def _last_page_number(page: Page, selector: str) -> int:
    numbers = [int(text) for node in page.select(selector) if (text := node.text(strip=True)).isdigit()]
    return max(numbers, default=page.number or 1)


async def _grew(page: BrowserPage, items: str, count: int, login_path: str) -> bool:
    """Wait for more than ``count`` items; False on a timeout or a trip to the login page."""
    try:
        await page.wait_for_function(
            "([css, n, login]) => document.querySelectorAll(css).length > n || location.pathname === login",
            arg=[items, count, login_path],
            timeout=GROWTH_TIMEOUT_MS,
        )
        return await page.locator(items).count() > count
    except PlaywrightError:  # a timeout, or a navigation that destroyed the page's context
        return False
