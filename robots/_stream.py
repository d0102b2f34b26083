"""The pages of one list walk, as a stream a robot iterates or reads whole.

``async for page in walk.pages(...)`` hands the robot each page; ``walk.pages(...).table(css, Person)``
reads every page's table into rows, so a list robot is one line of walk::

    @robot(system=population, record=Person)
    def persons(walk):
        return walk.pages("/persons?page={n}", last=".pagination a").table("table.persons", Person)
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Concatenate, ParamSpec, TypeVar

from robots._mapping import Columns
from robots._page import Page

P = ParamSpec("P")
W = TypeVar("W")
Rows = AsyncGenerator[dict[str, str], None]


class Pages:
    """The pages of one list walk, in order; closing it stops the walk and frees what it holds."""

    def __init__(self, pages: AsyncGenerator[Page, None]) -> None:
        self._pages = pages

    def __aiter__(self) -> AsyncIterator[Page]:
        return self._pages

    async def aclose(self) -> None:
        await self._pages.aclose()

    def table(self, css: str, columns: Columns, *, empty: Iterable[str] = ()) -> Rows:
        """Every page's table ``css`` read into rows: ``Page.table`` on each page, in order."""
        return self._rows(lambda page: page.table(css, columns, empty=empty))

    def records(self, item: str, columns: Columns, *, label: str = "dt", value: str = "dd") -> Rows:
        """Every page's cards ``item`` read into rows: ``Page.records`` on each page, in order."""
        return self._rows(lambda page: page.records(item, columns, label=label, value=value))

    async def _rows(self, read: Callable[[Page], list[dict[str, str]]]) -> Rows:
        async with contextlib.aclosing(self._pages) as pages:
            async for page in pages:
                for row in read(page):
                    yield row


def streamed(
    walk: Callable[Concatenate[W, P], AsyncGenerator[Page, None]],
) -> Callable[Concatenate[W, P], Pages]:
    """A ``Walk`` method that yields pages, returning them as ``Pages``."""

    @functools.wraps(walk)
    def pages(self: W, *args: P.args, **kwargs: P.kwargs) -> Pages:
        return Pages(walk(self, *args, **kwargs))

    return pages
