"""What ``harvest new`` makes of a list's columns: a field name, type, role and key for each one.

Names come from a small table of the headers Chinese systems use (身份证号 → ``id_number``) or
from a JSON key (``archiveNo`` → ``archive_no``); types are read off the sample values by the
very converters a record applies (``store.Record``), so a column guessed ``date`` is one the
harvest will read as a date.
"""

from __future__ import annotations

import datetime as dt
import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache
from typing import Any

import pydantic

from store import Field, Record

# header text → (field name, role); headers are compared with spaces and decoration removed
HEADERS: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(
        ("身份证号", "身份证号码", "公民身份号码", "证件号码", "身份证"), ("id_number", "id_number")
    ),
    **dict.fromkeys(("姓名", "名称"), ("name", "name")),
    **dict.fromkeys(("手机号", "手机号码", "联系电话", "电话", "联系方式"), ("phone", "phone")),
    **dict.fromkeys(("住址", "地址", "家庭住址", "现住址", "居住地址", "户籍地址"), ("address", "address")),
    "出生日期": ("birth_date", "birth_date"),
    "性别": ("gender", None),
    "民族": ("ethnicity", None),
    "年龄": ("age", None),
    **dict.fromkeys(("社区", "所属社区"), ("community", "community")),
    **dict.fromkeys(("户号", "户编号"), ("household_no", "household")),
    **dict.fromkeys(("网格", "所属网格"), ("grid", "grid")),
    "户主": ("head", "name"),
    **dict.fromkeys(("与户主关系", "关系"), ("relation", "relation")),
    "标签": ("tags", "tags"),
    "小区": ("compound", None),
    "楼栋": ("building", None),
    "单元": ("unit", "address_detail"),
    **dict.fromkeys(("室", "房号", "门牌号"), ("room", "address_detail")),
    "人数": ("size", None),
    "人口类型": ("residence_type", None),
    "档案编号": ("archive_no", None),
    "服务类型": ("service_type", None),
    "开始日期": ("start_date", None),
    "状态": ("status", None),
    "备注": ("remark", None),
}
# JSON keys (snake_cased) that say what personal data they hold, beside the names above
JSON_NAMES: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(("id_card", "id_no", "idcard", "sfzh", "cert_no", "card_no"), ("id_number", "id_number")),
    **dict.fromkeys(("mobile", "tel", "telephone", "phone_no"), ("phone", "phone")),
    **dict.fromkeys(("addr",), ("address", "address")),
    **dict.fromkeys(("birthday", "birth"), ("birth_date", "birth_date")),
    **{name: (name, role) for name, role in HEADERS.values()},
}
COMMUNITY = "community"
_DECOR = re.compile(r"[\s*＊:：▲▼△▽↑↓]+")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")
_LONG_DIGITS = re.compile(r"0\d+|\d{10,}")  # a phone, an ID or a code with leading zeros: text, not a number


@dataclass(frozen=True)
class Guess:
    """One field of the record ``harvest new`` writes; ``named`` is False where the name was made up."""

    name: str
    title: str
    type: str = "str"
    role: str | None = None
    key: bool = False
    optional: bool = False
    aliases: tuple[str, ...] = ()
    named: bool = True
    source: bool = True  # False: the list lacks it (the community, filled from the account's scope)


def from_headers(columns: Mapping[str, Sequence[Any]]) -> list[Guess]:
    """The fields of a table (or cards): its header texts with the values read under each, in order."""
    guesses = []
    for i, title in enumerate(columns, 1):
        known = HEADERS.get(_DECOR.sub("", title))
        name, role = known or (f"field_{i}", None)
        guesses.append(Guess(name, title, role=role, named=known is not None))
    return _typed(guesses, list(columns.values()))


def from_json(items: Sequence[Mapping[str, Any]], titles: Mapping[str, str]) -> list[Guess]:
    """The fields of a JSON list's objects, by the first one's keys; ``titles`` are the headers the
    page shows the same values under (the page's table), by key."""
    guesses = []
    for i, key in enumerate(items[0], 1):
        title = titles.get(key)
        snake = snake_case(key)
        known = HEADERS.get(_DECOR.sub("", title)) if title else None
        name, role = known or JSON_NAMES.get(snake) or (snake or f"field_{i}", None)
        aliases = () if key in (name, _camel(name)) else (key,)
        guesses.append(Guess(name, title or key, role=role, aliases=aliases, named=bool(known or snake)))
    return _typed(guesses, [[item.get(key) for item in items] for key in items[0]])


def snake_case(key: str) -> str:
    """``archiveNo`` → ``archive_no``, ``ID_CARD`` → ``id_card``; "" where nothing of it is ASCII."""
    return "_".join(word.lower() for word in _WORD.findall(key))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _typed(guesses: list[Guess], samples: list[Sequence[Any]]) -> list[Guess]:
    """Types and optionality from the samples, unique names, the key, and the community field."""
    seen: set[str] = set()
    typed = []
    for guess, values in zip(guesses, samples, strict=True):
        name, n = guess.name, 2
        while name in seen or keyword.iskeyword(name) or hasattr(Record, name):
            name, n = f"{guess.name}_{n}", n + 1  # 住址 and 地址 both say address
        seen.add(name)
        kind, optional = guess_type(values)
        if guess.role not in (None, "birth_date"):
            kind = "str"  # an ID, a phone or a household number is text, whatever its digits
        typed.append(replace(guess, name=name, type=kind, optional=optional))
    key = choose_key(typed, samples)
    typed = [replace(g, key=g.name == key, optional=g.optional and g.name != key) for g in typed]
    if not any(g.role == COMMUNITY for g in typed) and COMMUNITY not in seen:
        typed.append(Guess(COMMUNITY, "社区", role=COMMUNITY, source=False))
    return typed


def guess_type(values: Sequence[Any]) -> tuple[str, bool]:
    """The TOML type of a column (``str`` unless every value reads as one other type), and whether
    some values are empty or placeholders (``-``, ``暂无``…)."""
    present = [v for v in values if not _blank(v)]
    optional = len(present) < len(values)
    if not present:
        return "str", True
    for name, kind in (("bool", bool), ("int", int), ("decimal", Decimal), ("date", dt.date)):
        if all(_reads_as(kind, v) for v in present):
            return name, optional
    if all(isinstance(v, str) and _reads_as(dt.datetime, v) for v in present):
        return "datetime", optional
    return "str", optional


def choose_key(guesses: Sequence[Guess], samples: Sequence[Sequence[Any]]) -> str | None:
    """The ID number field if its values are distinct, else the first column whose values are."""
    distinct = [
        g.name
        for g, values in zip(guesses, samples, strict=True)
        if values and not any(map(_blank, values)) and len(set(map(str, values))) == len(values)
    ]
    ids = [name for name in distinct if any(g.name == name and g.role == "id_number" for g in guesses)]
    return next(iter(ids or distinct), None)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and _probe(str | None)(value=value).value is None)


def _reads_as(kind: type, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)  # 是/否 columns stay text: 1 and 0 would read as bools too
    if isinstance(value, bool):
        return False
    if isinstance(value, str) and _LONG_DIGITS.fullmatch(value.strip()):
        return False
    if kind is dt.date and not isinstance(value, str):
        return False
    try:
        _probe(kind)(value=value)
    except pydantic.ValidationError:
        return False
    return True


@cache
def _probe(kind: Any) -> type[Record]:
    """A record of one field of ``kind``: validating a value with it converts it as a harvest will."""
    return pydantic.create_model("Probe", __base__=Record, value=(kind, Field()))
