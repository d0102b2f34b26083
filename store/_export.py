"""Export files: .csv and .xlsx that a spreadsheet opens as data, never as formulas.

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
from pathlib import Path
from typing import TYPE_CHECKING

from machine import human_time

if TYPE_CHECKING:  # pandas and openpyxl cost a second: imported when a file is written, not at start-up
    import pandas as pd
    from openpyxl.worksheet.worksheet import Worksheet

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_like(value: object) -> bool:
    """Would a spreadsheet read this cell as a formula?"""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def write_export(frame: pd.DataFrame, path: Path, *, sheet: str, harvested_at: dt.datetime | None) -> Path:
    """Write ``frame`` (columns already headed in Chinese) to ``path``, .csv or .xlsx by its suffix,
    below a first line that says when the data was last harvested well."""
    import pandas as pd

    if path.suffix not in (".csv", ".xlsx"):
        raise ValueError(f"{path.name}: export to .csv or .xlsx")
    note = f"数据更新于 {human_time(harvested_at)}" if harvested_at else "数据尚未成功采集"
    # Created 0600, and an existing file made 0600 too before anything is written into it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as out:
        if path.suffix == ".xlsx":
            with pd.ExcelWriter(out, engine="openpyxl") as writer:
                frame.to_excel(writer, index=False, sheet_name=sheet[:31], startrow=1)
                cells = writer.sheets[sheet[:31]]
                cells.cell(row=1, column=1, value=note)
                _as_text(cells)
        else:
            # RFC 4180's line ends: the csv module then quotes a cell holding a lone CR too.
            text = frame.rename(columns=_quoted).map(_quoted).to_csv(index=False, lineterminator="\r\n")
            out.write(f"# {note}\r\n{text}".encode("utf-8-sig"))
    return path


def _quoted(value: object) -> object:
    """OWASP's leading apostrophe: the spreadsheet shows the text and runs nothing."""
    return f"'{value}" if formula_like(value) else value


def _as_text(cells: Worksheet) -> None:
    """openpyxl took text starting with ``=`` for a formula; every cell starting so becomes a string,
    with Excel's own mark for typed text (quotePrefix), so editing it does not turn it into one."""
    for row in cells.iter_rows():
        for cell in row:
            if formula_like(cell.value):
                cell.data_type = "s"
                cell.quotePrefix = True
