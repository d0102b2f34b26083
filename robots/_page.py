"""A fetched page, parsed once with lexbor: tables and card lists read by their header text.

Reading by header text, not by column position, is what makes a robot survive a vendor
reordering columns, and what lets it say exactly which header went missing when one is
renamed: that is drift, and the run ends ``layout_changed`` rather than storing nonsense.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

from selectolax.lexbor import LexborHTMLParser, LexborNode

from connectors import LayoutChanged


class Page:
    """The HTML of one page of a walk; ``number`` is its page number where pages are numbered."""

    def __init__(self, html: str, url: str, number: int | None = None) -> None:
        self.html = html
        self.url = url
        self.number = number
        self.rows = 0  # rows read from it so far: an empty page ends a walk of numbered pages

    def __repr__(self) -> str:
        return f"Page({self.url!r}, number={self.number}, rows={self.rows})"

    @cached_property
    def tree(self) -> LexborHTMLParser:
        return LexborHTMLParser(self.html)

    def select(self, css: str) -> list[LexborNode]:
        return self.tree.css(css)

    def text(self, css: str, default: str = "") -> str:
        """The stripped text of the first element matching ``css``."""
        node = self.tree.css_first(css)
        return node.text(strip=True) if node is not None else default

    def table(self, css: str, columns: Mapping[str, str]) -> list[dict[str, str]]:
        """The rows of the table ``css`` as dicts, its header texts mapped to field names by ``columns``.

        Columns not named are ignored; a named header that is missing raises ``LayoutChanged``.
        """
        table = self.tree.css_first(css)
        if table is None:
            raise LayoutChanged(f"no table {css!r} on {self.url}: the page layout may have changed")
        headers = [th.text(strip=True) for th in table.css("thead th") or table.css("tr:first-child th")]
        where = _positions(headers, columns, f"table {css!r} on {self.url}")
        rows = []
        for tr in table.css("tbody tr"):
            cells = tr.css("td")
            if len(cells) < len(headers):
                continue  # the "暂无数据" row, or a row spanning the table
            rows.append({field: cells[i].text(strip=True) for field, i in where.items()})
        self.rows += len(rows)
        return rows

    def records(
        self, item: str, columns: Mapping[str, str], *, label: str = "dt", value: str = "dd"
    ) -> list[dict[str, str]]:
        """Records laid out as cards of label/value pairs (``<dt>姓名</dt><dd>张三</dd>``)."""
        rows = []
        for card in self.tree.css(item):
            pairs = dict(
                zip(
                    (n.text(strip=True) for n in card.css(label)),
                    (n.text(strip=True) for n in card.css(value)),
                    strict=False,
                )
            )
            missing = [header for header in columns if header not in pairs]
            if missing:
                raise LayoutChanged(
                    f"cards {item!r} on {self.url} lack {', '.join(missing)} (they show "
                    f"{', '.join(pairs) or 'nothing'}): the page layout may have changed"
                )
            rows.append({field: pairs[header] for header, field in columns.items()})
        self.rows += len(rows)
        return rows


def _positions(headers: list[str], columns: Mapping[str, str], where: str) -> dict[str, int]:
    missing = [header for header in columns if header not in headers]
    if missing:
        raise LayoutChanged(
            f"{where} has no column {', '.join(missing)} (its headers are {', '.join(headers) or 'none'}): "
            "the page layout may have changed"
        )
    return {field: headers.index(header) for header, field in columns.items()}


def rename(row: Mapping[str, object], fields: Mapping[str, str], where: str) -> dict[str, object]:
    """A record from a JSON object or a spreadsheet row, its keys renamed by ``fields``."""
    missing = [key for key in fields if key not in row]
    if missing:
        raise LayoutChanged(
            f"{where} has no field {', '.join(missing)} (it has {', '.join(map(str, row)) or 'none'}): "
            "the system's data layout may have changed"
        )
    return {field: row[key] for key, field in fields.items()}
