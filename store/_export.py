"""Export files: .xlsx made for people to read, .csv made for programs, neither ever run as formulas.

An .xlsx says on its first lines when the data was harvested, which filter chose its rows and who
exported it when; its header is bold, frozen and filtered, its columns fitted, and a column empty in
every row is left out. A .csv is data only, header first, so ``csv.reader``, pandas or
``sqlite3 .import`` read it as it is: its freshness is said beside it (``harvest query`` prints it).

Harvested text is typed by outsiders (a company's name, an address), and Excel or WPS runs a cell
that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (``=HYPERLINK(…)``, ``=cmd|' /C calc'!A0``);
a leading tab or carriage return hides such a start. OWASP's rule against CSV injection: every text
cell that starts so is written as text: an explicit string cell in .xlsx (its value kept) and with a
leading apostrophe in CSV. Numbers stay numbers. A file holds personal data, so only its owner may
read it (0600).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from machine import human_time
from store._masking import MASKED_ROLES, mask_value

if TYPE_CHECKING:  # pandas and openpyxl cost a second: imported when a file is written, not at start-up
    import pandas as pd
    from openpyxl.worksheet.worksheet import Worksheet

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_WIDTH = 40  # characters of a column; longer text (an address, a remark) is cut on screen, not in the cell
WIDTH_ROWS = 1000  # rows a column's width is fitted to
_SHEET_FORBIDS = re.compile(r"[\[\]:*?/\\]")  # Excel refuses these in a sheet's name
_FILE_FORBIDS = re.compile(r'[\\/:*?"<>|\x00-\x1f]')  # Windows refuses these in a file's name


@dataclass(frozen=True)
class ExportNote:
    """What an .xlsx says about itself above its header."""

    harvested_at: dt.datetime | None
    filters: str  # the filter that chose the rows, in words (``selection_words``); "" for every record
    by: str
    at: dt.datetime
    zone: str | None = None  # the unit's time zone (HARVEST_TIMEZONE)

    def lines(self) -> list[str]:
        return [
            freshness_text(self.harvested_at, self.zone),
            f"筛选条件：{self.filters or '全部记录'}",
            f"导出人：{self.by}，导出时间：{human_time(self.at, self.zone)}",
        ]


def freshness_text(harvested_at: dt.datetime | None, zone: str | None = None) -> str:
    return f"数据更新于 {human_time(harvested_at, zone)}" if harvested_at else "数据尚未成功采集"


def export_name(title: str, day: dt.date) -> str:
    """The .xlsx file name staff download: ``人口信息-20261202.xlsx``, by the day it was exported."""
    return f"{_FILE_FORBIDS.sub('_', title).strip() or '数据'}-{day:%Y%m%d}.xlsx"


def selection_words(
    selection: Mapping[str, Any],
    labels: Mapping[str, str],
    roles: Mapping[str, str],
    titles: Mapping[str, str] | None = None,
    communities: Mapping[str, str] | None = None,
) -> str:
    """A query's filters as staff read them, personal values masked (the audit is read by people too):
    ``网格=第1网格；标签含 独居老人；未登记于 养老服务；年龄 60-79；检索「王*」；社区 东湖社区``
    (``titles`` name datasets, ``communities`` community codes)."""
    parts = []
    for key, joint in (("where", "="), ("contains", "含 ")):
        for field, value in (selection.get(key) or {}).items():
            role = roles.get(field)
            shown = mask_value(role, value) if role in MASKED_ROLES else value
            parts.append(f"{labels.get(field) or field}{joint}{shown}")
    if selection.get("absent_from"):
        other = selection["absent_from"]
        parts.append(f"未登记于 {(titles or {}).get(other, other)}")
    lowest, highest = selection.get("ages") or (None, None)
    if lowest is not None or highest is not None:
        parts.append(
            f"年龄 {lowest}-{highest}"
            if lowest is not None and highest is not None
            else f"年龄 {lowest} 及以上"
            if lowest is not None
            else f"年龄 {highest} 及以下"
        )
    if selection.get("search"):
        parts.append(f"检索「{_mask_numbers(selection['search'])}」")
    if selection.get("scope"):
        scope = selection["scope"]
        parts.append(f"社区 {(communities or {}).get(scope) or scope}")
    return "；".join(parts)


def _mask_numbers(text: str) -> str:
    """Long digit runs in what was searched (an ID number, a phone) masked like the records."""
    return re.sub(
        r"\d{7,}[\dXx]?",
        lambda m: str(mask_value("phone" if len(m[0]) == 11 else "id_number", m[0])),
        text,
    )


def formula_like(value: object) -> bool:
    """Would a spreadsheet read this cell as a formula?"""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def write_export(frame: pd.DataFrame, path: Path, *, sheet: str, note: ExportNote) -> Path:
    """Write ``frame`` (columns already headed in Chinese) to ``path``, .csv or .xlsx by its suffix;
    ``note`` heads an .xlsx (a .csv stays data only)."""
    if path.suffix not in (".csv", ".xlsx"):
        raise ValueError(f"{path.name}: export to .csv or .xlsx")
    # Created 0600, and an existing file made 0600 too before anything is written into it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as out:
        if path.suffix == ".xlsx":
            _write_xlsx(frame, out, sheet, note.lines())
        else:
            # RFC 4180's line ends: the csv module then quotes a cell holding a lone CR too.
            text = frame.rename(columns=_quoted).map(_quoted).to_csv(index=False, lineterminator="\r\n")
            out.write(text.encode("utf-8-sig"))
    return path


def _write_xlsx(frame: pd.DataFrame, out: BinaryIO, sheet: str, notes: list[str]) -> None:
    import pandas as pd
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    # A column empty in every row (no data flags, no phone among these) is noise to a reader; a
    # program reading the .csv wants the same columns every time, so only the .xlsx leaves them out.
    kept = [i for i in range(frame.shape[1]) if frame.empty or not _empty(frame.iloc[:, i])]
    shown = frame.iloc[:, kept]
    name = _SHEET_FORBIDS.sub(" ", sheet).strip()[:31] or "数据"
    header = len(notes) + 1  # the header's row, under the notes
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        shown.to_excel(writer, index=False, sheet_name=name, startrow=header - 1)
        cells = writer.sheets[name]
        for row, line in enumerate(notes, 1):
            cells.cell(row=row, column=1, value=line)
        cells_as_text(cells)
        bold = Font(bold=True)
        for cell in cells[header]:
            cell.font = bold
        cells.freeze_panes = cells.cell(row=header + 1, column=1)
        if shown.shape[1]:
            last = get_column_letter(shown.shape[1])
            cells.auto_filter.ref = f"A{header}:{last}{header + len(shown)}"
        for i, column in enumerate(shown.columns, 1):
            # The first rows show a column's kind of value; measuring 100,000 rows would cost seconds.
            values = shown.iloc[:WIDTH_ROWS, i - 1].dropna()
            wide = max([_width(column), *map(_width, values)])
            cells.column_dimensions[get_column_letter(i)].width = min(wide + 2, MAX_WIDTH)


def _empty(values: pd.Series) -> bool:
    return bool((values.isna() | values.eq("")).all())


def _width(value: object) -> int:
    """How many Latin characters wide ``value`` shows: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in str(value))


def _quoted(value: object) -> object:
    """OWASP's leading apostrophe: the spreadsheet shows the text and runs nothing."""
    return f"'{value}" if formula_like(value) else value


def cells_as_text(cells: Worksheet) -> None:
    """openpyxl took text starting with ``=`` for a formula; every cell starting so becomes a string,
    with Excel's own mark for typed text (quotePrefix), so editing it does not turn it into one."""
    for row in cells.iter_rows():
        for cell in row:
            if formula_like(cell.value):
                cell.data_type = "s"
                cell.quotePrefix = True
