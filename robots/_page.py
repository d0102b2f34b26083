"""A fetched page, parsed once with lexbor: tables and card lists read by their header text.

Reading by header text, not by column position, is what makes a robot survive a vendor
reordering columns, and what lets it say exactly which header went missing when one is
renamed: that is drift, and the run ends ``layout_changed`` rather than storing nonsense.

A table is read as the browser lays it out: ``colspan``/``rowspan`` expanded into a grid,
``<th>`` and ``<td>`` alike. A body row is either mapped to a record, recognised as the
table saying it is empty, or counted as ``dropped``: never skipped quietly, so a run that
could not read its rows cannot end ``ok``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from selectolax.lexbor import LexborHTMLParser, LexborNode

from connectors import LayoutChanged
from robots._mapping import Columns, Source, header_sources, key_sources, missing, pick

# What systems write in place of rows, compared with whitespace removed and case folded, as a prefix
# of the row's only text ("暂无数据，请调整查询条件" is one too).
EMPTY_MARKERS = (
    "暂无数据",
    "没有数据",
    "无数据",
    "暂无记录",
    "无记录",
    "没有记录",
    "没有找到匹配的记录",
    "没有符合条件的记录",
    "查询结果为空",
    "没有查询到",  # 没有查询到数据！, as WebForms GridViews say
    "未查询到",
    "nodata",  # "No data", DataTables' "No data available in table"
    "nomatchingrecordsfound",
    "norecordsfound",
    "showing0to0",
)


# Rows and cells are told apart by lexbor's tag ids, read from lexbor itself: ``.tag`` makes a str per cell.
_SAMPLE = LexborHTMLParser(
    "<table><thead><tr><th></th></tr></thead><tbody><tr><td></td></tr></tbody></table>"
)
_THEAD, _TBODY, _TR, _TH, _TD = (_SAMPLE.css(tag)[0].tag_id for tag in ("thead", "tbody", "tr", "th", "td"))
_CELLS = frozenset({_TH, _TD})
_SPACE = re.compile(r"\s+")
_HEADER_DECOR = "*＊:：▲▼△▽↑↓⇅↕⬆⬇"  # required-field stars, colons and sort arrows around a header
_SPAN = re.compile(r"\s*(\d+)")
MAX_COLSPAN = 1000  # the HTML standard's limits: a bogus span must not make a huge grid
_N = r"(\d{1,3}(?:[,，]\d{3})+|\d+)"
_NOT_MORE = r"(?![\d.,，])"  # the whole number: not the 12 of "12,345.00"
# A count of records the page states, in its text lower-cased. Pages ("共 250 页") and amounts
# ("合计 12,345.00 元") are not one. It is tried only where one of its words starts: searched for
# at once (with re.IGNORECASE), it took five times longer on a 500-row page.
_STATED_WORD = re.compile("共|总|合计|记录数|total|of")
_STATED = re.compile(
    rf"共[计有]?\s*{_N}\s*(?:条|项|人|户|records?\b|entries\b|items?\b)"
    rf"|(?:总数|总计|合计|总条数|记录数)\s*[:：]?\s*{_N}{_NOT_MORE}(?!\s*(?:页|元|万))"
    rf"|(?<![a-z])total\s*[:：]?\s*{_N}{_NOT_MORE}(?!\s*(?:pages?\b|页))"
    rf"|\bof\s+{_N}\s+(?:entries|records|items)\b"
)


@dataclass
class Tally:
    """What the pages of one run read: shared by every page of the run, read by the runner at its end."""

    rows: int = 0  # rows mapped to records
    dropped: int = 0  # body rows that could not be mapped
    said_empty: bool = False  # some page positively showed an empty table


class Page:
    """The HTML of one page of a walk; ``number`` is its page number where pages are numbered.

    ``rows`` and ``dropped`` count this page's rows; ``tally`` (shared by a run's pages) adds them up.
    """

    def __init__(self, html: str, url: str, number: int | None = None, tally: Tally | None = None) -> None:
        self.html = html
        self.url = url
        self.number = number
        self.tally = tally if tally is not None else Tally()
        self.rows = 0  # rows read from it so far: an empty page ends a walk of numbered pages
        self.dropped = 0
        self.said_empty = False
        self.fingerprints: set[int] = set()  # one per record read: a page repeating another's is a loop

    def __repr__(self) -> str:
        return f"Page({self.url!r}, number={self.number}, rows={self.rows}, dropped={self.dropped})"

    @cached_property
    def tree(self) -> LexborHTMLParser:
        return LexborHTMLParser(self.html)

    def select(self, css: str) -> list[LexborNode]:
        return self.tree.css(lexbor_css(css))

    def first(self, css: str) -> LexborNode | None:
        return self.tree.css_first(lexbor_css(css))

    def text(self, css: str, default: str = "") -> str:
        """The stripped text of the first element matching ``css``."""
        node = self.first(css)
        return node.text(strip=True) if node is not None else default

    def table(self, css: str, columns: Columns, *, empty: Iterable[str] = ()) -> list[dict[str, str]]:
        """The rows of the table ``css`` as dicts of field values, read by header text.

        ``columns`` is the record class (each field read under its ``title`` or one of its
        ``aliases``; the community field may be absent) or a ``{header: field}`` mapping. Other
        columns are ignored; a field whose header is missing raises ``LayoutChanged``. Headers
        match with whitespace, stars, colons and sort arrows ignored; under grouped headers a
        column is named by its lowest header ("姓名"), or as "基本信息/姓名". A body row that cannot
        be mapped counts in ``dropped``; one saying the table is empty sets ``said_empty``. ``empty``
        adds this system's own wordings of that to ``EMPTY_MARKERS``.
        """
        table = self.tree.css_first(css)
        if table is None:
            raise LayoutChanged(f"{self.url} 上没有表格 {css!r}：页面布局可能已变化")
        head, body = _sections(table)
        headers = _headers(head)
        where = _positions(headers, header_sources(columns), f"{self.url} 上的表格 {css!r}")
        repeated = {field: headers[i][-1] for field, i in where.items()}
        rows, dropped, said_empty = _body_rows(body, where, repeated, (*EMPTY_MARKERS, *map(_fold, empty)))
        if said_empty:
            self.said_empty = self.tally.said_empty = True
        self._read(rows, dropped)
        return rows

    def records(
        self, item: str, columns: Columns, *, label: str = "dt", value: str = "dd"
    ) -> list[dict[str, str]]:
        """Records laid out as cards of label/value pairs (``<dt>姓名</dt><dd>张三</dd>``), read by label."""
        keyed = _keyed(header_sources(columns))
        rows = []
        for card in self.tree.css(item):
            pairs = dict(
                zip(
                    (_header_key(n.text(strip=True)) for n in card.css(label)),
                    (n.text(strip=True) for n in card.css(value)),
                    strict=False,
                )
            )
            lost = missing(keyed, pairs)
            if lost:
                raise LayoutChanged(
                    f"{self.url} 上的卡片 {item!r} 缺少 {'、'.join(lost)}（卡片上只有 "
                    f"{'、'.join(pairs) or '空白'}）：页面布局可能已变化"
                )
            rows.append({field: pairs[name] for field, name in pick(keyed, pairs).items()})
        self._read(rows, 0)
        return rows

    def stated_total(self) -> int | None:
        """How many records the page says the list holds ("共 5,000 条", "of 5000 entries"), if it says."""
        return self._stated_total

    @cached_property
    def _stated_total(self) -> int | None:
        body = self.tree.body
        text = body.text(separator=" ").lower() if body is not None else ""
        hidden: str | None = None
        for word in _STATED_WORD.finditer(text):
            found = _STATED.match(text, word.start())
            if found is None:
                continue
            if hidden is None:  # scripts hold numbers that are not shown (read only once a count is seen)
                hidden = " ".join(n.text() for n in self.tree.css("script, style, template")).lower()
            if found.group() not in hidden:
                number = next(group for group in found.groups() if group)
                return int(number.replace(",", "").replace("，", ""))
        return None

    def _read(self, rows: list[dict[str, str]], dropped: int) -> None:
        self.rows += len(rows)
        self.tally.rows += len(rows)
        self.dropped += dropped
        self.tally.dropped += dropped
        self.fingerprints.update(hash(tuple(sorted(row.items()))) for row in rows)


class _Row(NamedTuple):
    cells: list[LexborNode | None]  # the cell at each column position, spans expanded
    own: list[LexborNode]  # the cells written in this row
    tr: LexborNode
    holes: bool  # some position before the last holds no cell


Grid = list[_Row]


def _sections(table: LexborNode) -> tuple[Grid, Grid]:
    """The header rows and the body rows of ``table`` (not of tables nested in its cells), spans expanded."""
    thead: list[LexborNode] = []
    bodies: list[list[LexborNode]] = []
    for part in table.iter():
        if part.tag_id == _THEAD:
            thead.extend(row for row in part.iter() if row.tag_id == _TR)
        elif part.tag_id == _TBODY:  # lexbor puts rows written directly in <table> into a tbody
            bodies.append([row for row in part.iter() if row.tag_id == _TR])
    # Most tables span nothing: then a row's cells are its positions, and no attribute is read.
    spans = table.css_first("[colspan], [rowspan]") is not None
    if thead:
        return _expand(thead, spans), [row for rows in bodies for row in _expand(rows, spans)]
    head: Grid = []
    body: Grid = []
    for rows in bodies:  # without a thead, the leading rows of <th> cells only are the header
        grid = _expand(rows, spans)
        while not body and grid and grid[0].own and all(c.tag_id == _TH for c in grid[0].own):
            head.append(grid.pop(0))
        body.extend(grid)
    return head, body


def _body_rows(
    body: Grid, where: Mapping[str, int], repeated: dict[str, str], markers: tuple[str, ...]
) -> tuple[list[dict[str, str]], int, bool]:
    """The records of the body rows, how many rows could not be mapped, and whether one said "empty"."""
    rows: list[dict[str, str]] = []
    notices = dropped = 0
    said_empty = False
    need = max(where.values(), default=-1) + 1
    for cells, own, tr, holes in body:
        row = None
        if len(cells) >= need and (not holes or all(cells[i] is not None for i in where.values())):
            row = {field: cells[i].text(strip=True) for field, i in where.items()}  # type: ignore[union-attr]
            if len(own) > 1 and sum(map(bool, row.values())) > 1:  # the common case: a record
                if row != repeated:  # long lists repeat their header row every so many rows
                    rows.append(row)
                continue
        # One cell, or at most one text: a marker of an empty table, a message, padding, or a record.
        text = tr.text(strip=True)
        if not text:
            continue  # padding, or a row holding only the repeats of cells spanning rows
        if _fold(text).startswith(markers) and sum(bool(c.text(strip=True)) for c in own) == 1:
            said_empty = True
        elif len(own) == 1 and len(cells) > 1 and all(c is own[0] for c in cells):
            notices += 1  # one cell across the table: a group heading, or a message instead of rows
        elif row is None:
            dropped += 1
        elif row != repeated:
            rows.append(row)
    if notices and not rows:
        dropped += notices  # a message we do not recognise where the records should be: not "empty"
    return rows, dropped, said_empty


def _expand(rows: list[LexborNode], spans: bool) -> Grid:
    """Each row's cells by column position, as the browser lays them out: a cell spanning two
    columns sits at both, one spanning two rows also in the row below. Linear in the grid's size."""
    grid: Grid = []
    above: dict[int, list] = {}  # position -> [rows it still covers, cell] of cells spanning rows
    for tr in rows:
        own = [cell for cell in tr.iter() if cell.tag_id in _CELLS]
        if not spans:
            grid.append(_Row(own, own, tr, False))
            continue
        cells: list[LexborNode | None] = []
        holes = False
        for cell in own:
            attrs = cell.attributes  # {} for most cells, at no cost
            wide = tall = 1
            if attrs:
                wide = min(max(_span(attrs.get("colspan")), 1), MAX_COLSPAN)
                tall = _span(attrs.get("rowspan")) or len(rows)  # rowspan=0: to the end of the section
            for _ in range(wide):
                while above and len(cells) in above:
                    cells.append(_take(above, len(cells)))
                if tall > 1:
                    above[len(cells)] = [tall - 1, cell]
                cells.append(cell)
        for position in sorted(p for p in above if p >= len(cells)) if above else ():
            holes = holes or position > len(cells)
            cells.extend([None] * (position - len(cells)))
            cells.append(_take(above, position))
        grid.append(_Row(cells, own, tr, holes))
    return grid


def _span(value: str | None) -> int:
    if value is None or value == "1":
        return 1
    found = _SPAN.match(value)
    return int(found.group(1)) if found else 1


def _take(above: dict[int, list], position: int) -> LexborNode:
    spanning = above[position]
    spanning[0] -= 1
    if not spanning[0]:
        del above[position]
    return spanning[1]


def _headers(head: Grid) -> list[list[str]]:
    """Per column position: the texts of its headers, top-down; the last is its own (the leaf)."""
    width = max((len(row.cells) for row in head), default=0)
    columns = []
    for i in range(width):
        texts = [""]  # a position no header row reaches
        for row in head:
            node = row.cells[i] if i < len(row.cells) else None
            text = node.text(strip=True) if node is not None else None
            if text is not None and texts[-1] != text:  # a cell spanning rows is named once
                texts.append(text)
        columns.append(texts[1:] or texts)
    return columns


def lexbor_css(css: str) -> str:
    """``css`` with Playwright's ``:has-text("…")`` as lexbor says it, so one selector serves both readers."""
    return css.replace(":has-text(", ":lexbor-contains(") if ":has-text(" in css else css


def _fold(text: str) -> str:
    return _SPACE.sub("", text).casefold()


def _header_key(text: str) -> str:
    return _SPACE.sub("", text).strip(_HEADER_DECOR)


def _keyed(sources: tuple[Source, ...]) -> tuple[Source, ...]:
    """``sources`` with each name as headers are compared (spaces, stars, colons, sort arrows removed)."""
    return tuple(Source(s.field, tuple(map(_header_key, s.names)), s.required) for s in sources)


def _positions(headers: list[list[str]], sources: tuple[Source, ...], where: str) -> dict[str, int]:
    known: dict[str, int] = {}
    for i, texts in enumerate(headers):
        known.setdefault(_header_key(texts[-1]), i)  # the first of two equal headers: deterministic
        known.setdefault("/".join(map(_header_key, texts)), i)
    keyed = _keyed(sources)
    lost = missing(keyed, known)
    if lost:
        shown = "、".join(texts[-1] for texts in headers if texts[-1]) or "无"
        raise LayoutChanged(f"{where} 没有 {'、'.join(lost)} 列（表头是 {shown}）：页面布局可能已变化")
    return {field: known[name] for field, name in pick(keyed, known).items()}


def rename(row: Mapping[str, object], columns: Columns, where: str) -> dict[str, object]:
    """A record from a JSON object or a spreadsheet row: its keys read into fields by ``columns``."""
    sources = key_sources(columns)
    lost = missing(sources, row)
    if lost:
        raise LayoutChanged(
            f"{where} 没有字段 {'、'.join(lost)}（它有 {'、'.join(map(str, row)) or '无'}）："
            "系统的数据布局可能已变化"
        )
    return {field: row[key] for field, key in pick(sources, row).items()}
