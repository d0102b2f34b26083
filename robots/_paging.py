"""How a list's pages follow each other, and how a walk knows it has reached the real end.

Every list walk ends, and ends at the real end, whatever the system's texts and markup:
a page sent elsewhere (``?page=8355`` redirected to ``?page=1``) is not that page; a page
whose rows were all seen before is an earlier page served again; no list is longer than
``max_pages``; and the page after the pager's last is read to prove the list ends there.
Past the real end these end the walk; before the count the pager gave, they are drift.

Here are the pieces ``Walk`` builds its list walks from: ``Listing`` (one list's pages, rows
seen and stated total, and the numbered walk's guards), ``Numbering`` (where an address holds
the page number), the inference of 0/1-based numbering and of the page count from a pager,
address comparison, fetch-ahead, and for pagers that are clicked, ``clicked()`` over a
``Rendered`` page that knows what the system answered each of its frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Locator, Request, Response
from playwright.async_api import Page as BrowserPage
from selectolax.lexbor import LexborNode

from connectors import LayoutChanged, Polite, Session, SystemUnavailable, backoff
from robots._page import Page, Tally

if TYPE_CHECKING:
    from loguru import Logger

T = TypeVar("T")
GROWTH_TIMEOUT_MS = 10_000  # how long a "load more", or a clicked "下一页", may take to change the list
# A "下一页" that cannot be clicked: marked disabled (Bootstrap, ASP.NET's aspNetDisabled, Element's
# buttons), or an <a> with nothing that would act on a click.
DISABLED = """el => el.disabled === true || el.hasAttribute('disabled')
    || el.getAttribute('aria-disabled') === 'true' || el.closest('.disabled, .aspNetDisabled') !== null
    || (!['BUTTON', 'INPUT'].includes(el.tagName) && !el.hasAttribute('href') && !el.hasAttribute('onclick')
        && getComputedStyle(el).cursor !== 'pointer')"""


class Listing:
    """One list a walk reads: the fingerprints of its rows, its pages, the total its pages state."""

    def __init__(self, path: str, *, cap: int, log: Logger, taken: Callable[[Page], Page]) -> None:
        self.path = path
        self.cap = cap  # pages the list may have
        self.log = log
        self.pages = 0  # pages handed to the robot
        self.last: int | None = None  # the last page that brought new rows
        self.total: int | None = None  # the record count its pages last stated
        self._seen: set[int] = set()  # hashes only, and at most cap pages of them
        self._taken = taken

    def take(self, page: Page) -> Page:
        self.pages += 1
        self.stated(page.stated_total())
        return self._taken(page)

    def stated(self, total: int | None) -> None:
        """The list's record count as a page states it: totals move during a walk, the latest wins."""
        if total is not None:
            self.total = total

    def repeats(self, fingerprints: set[int], number: int | None) -> bool:
        """True if every row of page ``number`` was seen on earlier pages; else remember them."""
        if fingerprints and fingerprints <= self._seen:
            return True
        self._seen |= fingerprints
        self.last = number
        return False

    def ended(self, why: str) -> None:
        self.log.info("walk of {} ended after page {}: {}", self.path, self.last, why)

    def too_long(self, said: str = "后面似乎还有更多页") -> LayoutChanged:
        return LayoutChanged(
            f"{self.path}：读了 {self.pages} 页后停止：{said}，超出了 max_pages={self.cap}；如果列表确实"
            "更长，请调大机器人的 max_pages= 或 HARVEST_MAX_PAGES"
        )

    async def counted(
        self, numbering: Numbering, numbers: range, read: Callable[[int], Awaitable[Page]], *, window: int
    ) -> AsyncIterator[Page]:
        """The pages the pager counts after the first, then on to the end.

        Up to the last it counts, a page sent elsewhere or repeating earlier rows is drift, not the end.
        """
        final = numbers.stop - 1
        async with contextlib.aclosing(fetch_ahead(numbers, read, window=window)) as counted:
            async for page in counted:
                if not numbering.holds(page):
                    raise LayoutChanged(
                        f"{self.path}：第 {page.number} 页（共 {final} 页）被转到了 {where(page.url)}："
                        "系统可能改变了页码的编号方式"
                    )
                yield self.take(page)
                if self.repeats(page.fingerprints, page.number):
                    raise LayoutChanged(
                        f"{self.path}：第 {page.number} 页（共 {final} 页）重复了前面各页的行："
                        "系统可能不再从机器人放页码的位置读取页码"
                    )
        rest = self.to_the_end(numbering, itertools.count(final + 1), read, window=0, pager=final)
        async with contextlib.aclosing(rest) as pages:
            async for page in pages:
                yield page

    async def to_the_end(
        self,
        numbering: Numbering,
        numbers: Iterator[int],
        read: Callable[[int], Awaitable[Page]],
        *,
        window: int,
        pager: int | None = None,
    ) -> AsyncIterator[Page]:
        """Pages until one has no rows, repeats earlier ones or was sent elsewhere; ``pager``: the last
        page the pager showed, so that a page with rows after it is known as the pager under-counting."""
        room = self.cap + 1 - self.pages  # one past the cap: rows there mean the list is longer
        async with contextlib.aclosing(
            fetch_ahead(itertools.islice(numbers, room), read, window=window)
        ) as pages:
            async for page in pages:
                if not numbering.holds(page):
                    self.ended(f"page {page.number} redirected to {where(page.url)}")
                    return
                yield self.take(page)
                if not page.rows or self.repeats(page.fingerprints, page.number):
                    self.ended(f"page {page.number} {'repeats earlier rows' if page.rows else 'has no rows'}")
                    return
                if self.pages > self.cap:
                    raise self.too_long()
                if pager is not None and page.number == pager + 1:
                    self.log.warning(
                        "{}：翻页栏只显示 {} 页，但第 {} 页也有数据；改为逐页往后读",
                        self.path,
                        pager,
                        page.number,
                    )


class Numbering:
    """Where a list's address holds its page number ``{n}``: a query parameter or a path segment."""

    def __init__(self, template: str) -> None:
        if "{n}" not in template:
            raise ValueError(f"pages({template!r})：请把 {{n}} 放在页码所在的位置，例如 /list?page={{n}}")
        self.template = template
        parts = urlsplit(template)
        self._segments = parts.path.split("/")
        self._param = next((k for k, v in parse_qsl(parts.query, keep_blank_values=True) if "{n}" in v), None)
        if self._param is not None:
            self._index, holder = -1, dict(parse_qsl(parts.query, keep_blank_values=True))[self._param]
        else:
            self._index = next((i for i, part in enumerate(self._segments) if "{n}" in part), -1)
            if self._index < 0:
                raise ValueError(f"pages({template!r})：请把 {{n}} 放在某个查询参数或路径段中")
            holder = self._segments[self._index]
        before, _, after = holder.partition("{n}")
        self._pattern = re.compile(re.escape(before) + r"(\d+)" + re.escape(after))

    def at(self, n: int) -> str:
        return self.template.replace("{n}", str(n))

    def number(self, url: str) -> int | None:
        """The page of this list that the absolute ``url`` goes to, if it goes to one."""
        parts = urlsplit(url)
        segments = parts.path.split("/")
        if self._param is not None:
            if _path(parts.path) != _path("/".join(self._segments)):
                return None
            values = [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == self._param]
        elif len(segments) == len(self._segments) and all(
            unquote(a) == unquote(b)
            for i, (a, b) in enumerate(zip(segments, self._segments, strict=True))
            if i != self._index
        ):
            values = [segments[self._index]]
        else:
            return None
        found = self._pattern.fullmatch(unquote(values[0])) if values else None
        return int(found.group(1)) if found else None

    def holds(self, page: Page) -> bool:
        """Whether ``page`` is the page asked for, not one the system sent us to instead."""
        return page.number is not None and same_page(self.at(page.number), page.url)


def same_page(requested: str, final: str) -> bool:
    """Whether a response that ended at ``final`` is the page at ``requested``: the same host and path,
    and every query parameter asked for still there with its value (a system may add its own)."""
    asked, got = urlsplit(requested), urlsplit(final)
    return (asked.netloc.lower(), _path(asked.path)) == (got.netloc.lower(), _path(got.path)) and set(
        parse_qsl(asked.query, keep_blank_values=True)
    ) <= set(parse_qsl(got.query, keep_blank_values=True))


def address(url: str) -> tuple[str, str, frozenset[tuple[str, str]]]:
    """What makes two URLs the same page: host, path, and query parameters in any order."""
    parts = urlsplit(url)
    return parts.netloc.lower(), _path(parts.path), frozenset(parse_qsl(parts.query, keep_blank_values=True))


def _path(path: str) -> str:
    return unquote(path).rstrip("/") or "/"


def where(url: str) -> str:
    """``url`` without its scheme and host, for messages: /persons?page=1."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _links(page: Page, numbering: Numbering, nodes: Iterable[LexborNode]) -> list[tuple[str, int]]:
    """The text and page number of each link in ``nodes`` (or inside them) to a page of the list."""
    found = []
    for node in nodes:
        for link in node.css("a[href]"):
            number = numbering.number(urljoin(page.url, link.attributes.get("href") or ""))
            if number is not None:
                found.append((link.text(strip=True), number))
    return found


def zero_based(page: Page, numbering: Numbering) -> bool:
    """Whether the list numbers its pages from 0, by the links of one of its pages: links labelled
    one more than the page they go to ("2" to page 1), or without such labels, a link to page 0."""
    links = _links(page, numbering, page.select("a[href]"))
    offsets = {number - int(text) for text, number in links if text.isdigit()}
    if offsets:
        return offsets == {-1}
    return numbering.number(page.url) == 0 or any(number == 0 for _, number in links)


def page_count(page: Page, last: str, numbering: Numbering, start: int) -> int:
    """How many pages the first page says the list has: the largest of the numbers its pager shows,
    those its pager's links go to (a 末页 link beyond a window of numbers), and its stated total
    over the rows it holds."""
    nodes = page.select(last)
    shown = [int(text) for node in nodes if (text := node.text(strip=True)).isdigit()]
    linked = [number - start + 1 for _, number in _links(page, numbering, nodes)]
    total = page.stated_total()
    stated = [math.ceil(total / page.rows)] if total and page.rows else []
    return max(*shown, *linked, *stated, (page.number or start) - start + 1, 1)


def item_prints(items: list[Any]) -> set[int]:
    """One hash per JSON item, as ``Page.fingerprints`` has one per row."""
    return {hash(json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)) for item in items}


async def fetch_ahead(
    numbers: Iterable[int], fetch: Callable[[int], Awaitable[T]], *, window: int
) -> AsyncIterator[T]:
    """``fetch(n)`` for each number, yielded in order, with up to ``window`` fetches in flight
    while the caller reads a result (0: one at a time, each fetched only when asked for)."""
    todo = iter(numbers)
    pending: deque[asyncio.Task[T]] = deque()

    def top_up(size: int) -> None:
        while len(pending) < size and (n := next(todo, None)) is not None:
            pending.append(asyncio.ensure_future(fetch(n)))

    try:
        while True:
            top_up(max(window, 1))
            if not pending:
                return
            result = await pending.popleft()
            top_up(window)
            yield result
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def clicked(
    session: Session, listing: Listing, *, next: str, ready: str | None, frame: str | None, tally: Tally
) -> AsyncIterator[Page]:
    """Pages reached by clicking ``next``. After a lost session the list is loaded again and
    clicked forward past the pages already yielded.

    A load or a click the system answers with an error page (5xx, 429, a dropped connection)
    is retried as ``Polite`` retries a fetch, with backoff and as often: a click by going back
    to the page it left and clicking again, or where that page does not come back, by loading
    the list again and clicking forward.
    """
    generation = session.generation
    shown = await Rendered.load(session, listing.path, frame)
    behind = 0  # pages to click past, unread, after loading the list again
    before: str | None = None  # the text of the page the latest click left
    failures = 0  # error pages since the latest new page
    retries = session.polite.politeness.retries
    try:
        while True:
            target = await shown.answer()
            if isinstance(target, str):
                at = f"{listing.path} 的第 {listing.pages + 1} 页"
                if failures == retries:
                    raise SystemUnavailable(
                        f"{session.system.name} 重试 {retries} 次后仍没有答复{at}（{target}）："
                        "系统可能暂时不可用，稍后会自动重试"
                    )
                wait = backoff(failures)
                failures += 1
                listing.log.info("{}返回 {}；{:.1f} 秒后第 {} 次重试", at, target, wait, failures)
                await asyncio.sleep(wait)
                if before is not None and await shown.back(before, session.polite):
                    behind += 1  # on a page already read again: click on from it
                else:
                    shown.close()
                    shown, behind = await Rendered.load(session, listing.path, frame), listing.pages
                before = None
                continue
            if session.lost(shown.page.url, 200) or session.lost(target.url, 200):
                await session.relogin(generation)
                generation = session.generation
                listing.log.info(
                    "{}: logged in again; clicking forward past page {}", listing.path, listing.pages
                )
                shown.close()
                shown, behind, before = await Rendered.load(session, listing.path, frame), listing.pages, None
                continue
            if ready is not None:
                await target.wait_for_selector(ready)
            if behind:
                behind -= 1
            else:
                page = Page(await target.content(), target.url, listing.pages + 1, tally)
                failures = 0  # a new page: the click answered
                yield listing.take(page)
                if listing.repeats(page.fingerprints, page.number):
                    listing.ended(f"page {page.number} repeats earlier rows")
                    return
            link = target.locator(next).first
            if not await clickable(link):
                listing.ended(f"page {listing.pages + behind} has no next link, or it is disabled")
                return
            if listing.pages >= listing.cap and not behind:
                raise listing.too_long()
            before = await frame_text(target)
            async with session.polite.slot():
                await link.click()
                changed = await shown.changed(before)
            if not changed and not isinstance(await shown.answer(), str):
                listing.ended(f"clicking the next link of page {listing.pages} changed nothing")
                return
    finally:
        shown.close()


class Rendered:
    """A page rendered to be clicked through, the list in it or in its ``<iframe>`` ``frame``, and
    what the system last answered each of its frames: a 5xx, a 429 or a dropped connection leaves
    an error page where the list was, which is neither the list nor a changed layout."""

    def __init__(self, page: BrowserPage, frame: str | None) -> None:
        self.page = page
        self.frame = frame
        self._problems: dict[Frame, str] = {}  # per frame, the latest document answer if it failed
        self._failed = asyncio.Event()  # set whenever a frame's document fails
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_failure)

    @classmethod
    async def load(cls, session: Session, path: str, frame: str | None) -> Rendered:
        """``path`` rendered, what the system answers each of its frames watched from the start."""
        shown = cls(await session.page(), frame)  # the page render() loads ``path`` in
        try:
            await session.render(path)
        except BaseException:
            shown.close()
            raise
        return shown

    def close(self) -> None:
        self.page.remove_listener("response", self._on_response)
        self.page.remove_listener("requestfailed", self._on_failure)

    async def answer(self) -> Frame | str:
        """The frame the list lives in, or what the system answered instead of it."""
        if problem := self._problems.get(self.page.main_frame):
            return problem  # an error page in place of the page holding the list
        inner = await self._frame()
        return self._problems.get(inner) or inner

    async def changed(self, before: str) -> bool:
        """Wait for the list's text to differ from ``before``: a new page loaded, or a script redrew it."""
        # The click may navigate away from the document watched (an error), or change nothing (a timeout).
        with contextlib.suppress(PlaywrightError):
            await (await self._frame()).wait_for_function(
                "before => document.body !== null && document.body.innerText !== before",
                arg=before,
                timeout=GROWTH_TIMEOUT_MS,
            )
        await self.page.wait_for_load_state()
        return await frame_text(await self._frame()) != before

    async def back(self, before: str, polite: Polite) -> bool:
        """Go back in the page's history, as a person would from an error page; whether the list
        shown before (its text ``before``) is there again."""
        main = self.page.main_frame
        inner = main if main in self._problems else await self._frame()  # where the error page is
        with contextlib.suppress(PlaywrightError):  # nothing to go back to: the caller loads the list again
            async with polite.slot(), inner.expect_navigation(timeout=GROWTH_TIMEOUT_MS):
                await self.page.evaluate("history.back()")
        await self.page.wait_for_load_state()
        return await frame_text(await self._frame()) == before

    async def _frame(self) -> Frame:
        """The list's frame once its document has loaded, or failed: one cut off mid-way never loads."""
        if self.frame is None:
            inner = self.page.main_frame
        else:
            try:
                inner = await (await self.page.wait_for_selector(self.frame)).content_frame()  # type: ignore[union-attr]
            except PlaywrightError as exc:
                raise LayoutChanged(
                    f"{where(self.page.url)} 上没有 iframe {self.frame!r}（{str(exc).splitlines()[0]}）："
                    "页面布局可能已变化"
                ) from exc
            if inner is None:
                raise LayoutChanged(
                    f"{where(self.page.url)} 上的 {self.frame!r} 不是 iframe：页面布局可能已变化"
                )
        loaded = asyncio.ensure_future(inner.wait_for_load_state())
        try:
            while not loaded.done() and inner not in self._problems:
                self._failed.clear()
                failed = asyncio.ensure_future(self._failed.wait())
                await asyncio.wait({loaded, failed}, return_when=asyncio.FIRST_COMPLETED)
                failed.cancel()
        finally:
            loaded.cancel()
        if inner not in self._problems:
            await loaded  # raises what the wait did: a frame detached while loading, a time-out
        return inner

    def _on_response(self, response: Response) -> None:
        if response.request.resource_type != "document":
            return
        if response.status >= 500 or response.status == 429:
            self._problems[response.frame] = f"HTTP {response.status}"
        else:
            self._problems.pop(response.frame, None)

    def _on_failure(self, request: Request) -> None:
        if request.resource_type == "document":
            self._problems[request.frame] = request.failure or "no answer"
            self._failed.set()


async def frame_text(frame: Frame) -> str:
    return await frame.evaluate("() => document.body ? document.body.innerText : ''")


async def clickable(link: Locator) -> bool:
    return bool(await link.count()) and await link.is_visible() and not await link.evaluate(DISABLED)


async def grew(page: BrowserPage, items: str, count: int, login_path: str) -> bool:
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
