"""What back-office pages show, turned into what a record field's type accepts.

A converter takes a cell's value and returns the value for the field: anything but a ``str``
passes untouched, and a text it does not recognise comes back as that very ``str`` object.
Pydantic then rejects it, the row is counted invalid, and that is the drift check: nothing
here swallows an error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Converter = Callable[[Any], Any]

# What systems show in an empty cell; None for an optional field of any type, left alone for a required one.
PLACEHOLDERS = frozenset(
    {
        "",
        "-",
        "--",
        "—",
        "——",
        "–",
        "无",
        "暂无",
        "空",
        "/",
        "null",
        "NULL",
        "Null",
        "None",
        "none",
        "N/A",
        "n/a",
    }
)
BOOLS = {
    "是": True,
    "否": False,
    "有": True,
    "无": False,  # a bool field's own word wins over the placeholder
    "y": True,
    "n": False,
    "true": True,
    "false": False,
    "1": True,
    "0": False,
}
_DATE = (
    r"(?:(\d{4})([-/.])(\d{1,2})\2(\d{1,2})"  # 1988-6-15, 1988/6/15, 1988.6.15
    r"|(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?"
    r"|(\d{4})(\d{2})(\d{2}))"  # 19880615
)
_TIME = r"(?:(?:\s+|T)(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
_WHEN = re.compile(_DATE + _TIME)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_NOT_DIGITS = str.maketrans("", "", "￥¥元 ,，\u00a0\u3000")  # currency signs, thousands separators, spaces
COUNT_UNITS = "人户次个岁"  # an int cell may say what it counts: "12人"


def _when(text: str) -> tuple[int, ...] | None:
    """Year, month, day, hour, minute, second, microsecond of a date or date-time text."""
    found = _WHEN.fullmatch(text)
    if found is None:
        return None
    g = found.groups()
    date = g[0:1] + g[2:4] if g[0] else g[4:7] if g[4] else g[7:10]
    microseconds = int((g[13] or "").ljust(6, "0"))
    return (*map(int, date), *(int(part or 0) for part in g[10:13]), microseconds)


def to_date(text: Any) -> Any:
    """``1988年6月15日``, ``1988/6/15``, ``1988.6.15``, ``19880615``, ``1988-06-15 00:00:00`` as a date."""
    if type(text) is not str or (len(text) == 10 and text[4] == "-" and text[7] == "-"):
        return text  # ISO already: pydantic's own parser is faster and rejects what is not a date
    parts = _when(text.strip())
    if parts is None or any(parts[3:]):  # a time of day is not a date: let validation say so
        return text
    try:
        return dt.date(*parts[:3])
    except ValueError:
        return text


def to_datetime(text: Any) -> Any:
    """The forms of ``to_date``, with an optional time ``HH:MM[:SS[.ffffff]]``."""
    if type(text) is not str:
        return text
    parts = _when(text.strip())
    if parts is None:
        return text
    try:
        return dt.datetime(*parts)
    except ValueError:
        return text


def _number(text: Any, units: str = "") -> Any:
    if type(text) is not str or (text.isascii() and text.isdigit()):
        return text  # the common case, for pydantic to parse
    clean = text.replace("RMB", "").translate(_NOT_DIGITS).rstrip(units)
    return clean if _NUMBER.fullmatch(clean) else text


def to_int(text: Any) -> Any:
    """``1,200``, ``12人`` as digits pydantic reads; ``-5`` stays negative."""
    return _number(text, COUNT_UNITS)


def to_amount(text: Any) -> Any:
    """``￥1,200.50元``, ``RMB 3，000`` as a number pydantic reads (a float or an exact Decimal)."""
    return _number(text)


def to_bool(text: Any) -> Any:
    """是/否, 有/无, Y/N, true/false, 1/0."""
    return BOOLS.get(text.strip().lower(), text) if type(text) is str else text


CONVERTERS: dict[type, Converter] = {
    dt.date: to_date,
    dt.datetime: to_datetime,
    int: to_int,
    float: to_amount,
    Decimal: to_amount,
    bool: to_bool,
}


def converter(kind: Any, optional: bool) -> Converter | None:
    """How a cell becomes a value of ``kind`` (or None when ``optional``); None when nothing needs doing."""
    convert = CONVERTERS.get(kind)
    if not optional:
        return convert
    if convert is None:
        return _blank_is_none
    typed = convert

    def convert_optional(text: Any) -> Any:
        value = typed(text)
        if value is text and type(text) is str and text.strip() in PLACEHOLDERS:
            return None
        return value

    return convert_optional


def _blank_is_none(text: Any) -> Any:
    # The common case of an optional str: one set lookup, and the text itself handed back.
    return None if type(text) is str and text.strip() in PLACEHOLDERS else text
