"""Robots declared in a TOML file of ``robots/``: the common list shapes, with no Python.

The file names a system, a list shape and the fields; from it this module builds the record class
and the walk a Python robot would have written, and registers them with ``@robot``, so the CLI and
the scheduler cannot tell the two apart. Anything the runtime could not run is refused when the
file loads, as a ``RobotDeclarationError`` that starts with the file and line (``robots/x.toml:7: ``):
a typo is found where it is written, not at the first nightly run, and never silently ignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import re
import sys
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, get_args

import pydantic

from connectors import System, systems
from robots._page import Page
from robots._registry import _ROBOTS, DEFAULT_SCHEDULE, RobotDeclarationError, RobotSpec, robot
from robots._walk import Walk
from store import Field, Record, Role, record_spec


class Kind(NamedTuple):
    """What a value must be, and how a message says so."""

    fits: Callable[[Any], bool]
    said: str


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML's true is no page number


TEXT = Kind(lambda v: isinstance(v, str) and v.strip() != "", "非空文字（加引号）")
COUNT = Kind(lambda v: _whole(v) and v >= 1, "不小于 1 的整数")
FIRST = Kind(lambda v: _whole(v) and v in (0, 1), "第一页的页码 0 或 1")
NUMBER = Kind(lambda v: _whole(v) or isinstance(v, float), "数")
FLAG = Kind(lambda v: isinstance(v, bool), "布尔值 true 或 false")
TEXTS = Kind(lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), '文字列表，如 ["a", "b"]')
TABLE = Kind(lambda v: isinstance(v, dict), "表，如 {status = 1}")
SHEET = Kind(lambda v: _whole(v) or TEXT.fits(v), "工作表的序号（从 0 起）或名称")

ROBOT_KEYS = {
    "name": TEXT,
    "system": TEXT,
    "dataset": TEXT,
    "title": TEXT,
    "doc": TEXT,
    "schedule": TEXT,
    "max_pages": COUNT,
    "invalid_tolerance": NUMBER,
    "allow": TEXTS,
}
FIELD_KEYS = {
    "name": TEXT,
    "title": TEXT,
    "aliases": TEXTS,
    "type": TEXT,
    "role": TEXT,
    "key": FLAG,
    "optional": FLAG,
}
TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "decimal": Decimal,
    "bool": bool,
    "date": dt.date,
    "datetime": dt.datetime,
}
_CARDS = {"label": TEXT, "value": TEXT}  # how page.records() tells a card's labels from its values
_LISTED = {"table": TEXT, "cards": TEXT, **_CARDS}  # a list page's rows: a table, or cards


@dataclass(frozen=True)
class Shape:
    """One shape of ``[list]``: keys handed to its Walk method as written, and keys its rows are read by."""

    walk: dict[str, Kind]
    read: dict[str, Kind] = field(default_factory=dict)
    required: tuple[str, ...] = ()


SHAPES = {
    "pages": Shape({"last": TEXT, "render": FLAG, "start": FIRST, "ready": TEXT}, _LISTED),
    "follow": Shape({"next": TEXT, "render": FLAG, "frame": TEXT, "ready": TEXT}, _LISTED, ("next",)),
    "load_more": Shape({"item": TEXT, "button": TEXT, "ready": TEXT}, _CARDS, ("item",)),
    "api": Shape(
        {"page_param": TEXT, "size_param": TEXT, "size": COUNT, "rows": TEXT, "total": TEXT, "params": TABLE}
    ),
    "excel": Shape({"sheet": SHEET}),
}
TABLES = {"robot": ROBOT_KEYS, "list": {"shape": TEXT, "path": TEXT}, "field": FIELD_KEYS}
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_DATASET = re.compile(r"[a-z][a-z0-9_]{0,40}")  # what the store names its tables by
_HEADER = re.compile(r"\s*\[\[?\s*(?P<name>[^\]]*?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"\s*[\"']?(?P<key>[A-Za-z0-9_-]+)[\"']?\s*=")
_AT = re.compile(r"\s*\(at line (?P<line>\d+), column (?P<column>\d+)\)$")

_DECLARED: dict[str, set[str]] = {}  # package → the modules its last discovery read from .toml files
Where = tuple[str, int, str | None]  # a table, which of its kind (the n-th [[field]]), and a key in it


class Lines:
    """Where each table and key of a TOML text is written: what a message names the line by.

    A line finder over the text rather than a second parser: tomllib gives values, not places.
    """

    def __init__(self, source: str) -> None:
        self._places: dict[tuple[str, int, str | None], int] = {}
        seen: dict[str, int] = {}
        table, index = "", 0  # keys before any table header
        for number, text in enumerate(source.splitlines(), 1):
            header = _HEADER.match(text)
            if header is not None:
                table = header["name"].strip("\"' ")
                index = seen[table] = seen.get(table, -1) + 1
                self._places.setdefault((table, index, None), number)
            elif (key := _KEY.match(text)) is not None:
                self._places.setdefault((table, index, key["key"]), number)

    def of(self, table: str, index: int = 0, key: str | None = None) -> int:
        """The line of ``key`` in the table, else of the table's header, else the first line."""
        places = self._places
        # an inline table (``list = {shape = "api", ...}``) is one line: the line of its own name
        found = places.get((table, index, key)) or places.get((table, index, None))
        return found or places.get(("", 0, table)) or 1


class Declaration:
    """One TOML file being read: its text's lines, and the errors that name them."""

    def __init__(self, path: Path, source: str) -> None:
        self.shown = _shown(path)
        self.lines = Lines(source)

    def error(self, where: Where, text: str) -> RobotDeclarationError:
        return RobotDeclarationError(f"{self.shown}:{self.lines.of(*where)}: {text}")

    def table(self, data: dict[str, Any], name: str) -> dict[str, Any]:
        found = data.get(name)
        if not isinstance(found, dict):
            raise self.error((name, 0, None), f"缺少 [{name}] 表：请照 README「声明式机器人」一节写出它")
        return found

    def checked(
        self, values: dict[str, Any], known: dict[str, Kind], where: Where, required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """``values`` whose keys are all ``known`` and of their kind, the ``required`` ones present."""
        table, index, _ = where
        label = "[[field]]" if table == "field" else f"[{table}]"
        for key, value in values.items():
            kind = known.get(key)
            if kind is None:
                raise self.error(
                    (table, index, key),
                    f"{label} 里没有 {key} 这个键（可用的键：{'、'.join(known)}）：请检查拼写或删去它",
                )
            if not kind.fits(value):
                raise self.error(
                    (table, index, key), f"{label} 的 {key} 应为{kind.said}，写的是 {_toml(value)}"
                )
        for key in required:
            if key not in values:
                raise self.error(where, f"{label} 缺少 {key}：请写明 {key} = ...")
        return values


def declare(path: Path, package: str = "robots") -> RobotSpec:
    """Read the robot ``path`` declares and register it as the robot of module ``package.<stem>``."""
    source = path.read_text(encoding="utf-8")
    declaration = Declaration(path, source)
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(declaration.shown, str(exc)) from None
    for name, value in data.items():
        if _written(name, value) not in ("[robot]", "[list]", "[[field]]", "[fields]"):
            raise declaration.error(
                (name, 0, None) if isinstance(value, dict | list) else ("", 0, name),
                f"{_written(name, value)} 不是声明的一部分：只能有 [robot]、[list]、[fields]（或 [[field]]）",
            )
    module = f"{package}.{path.stem}"
    head = declaration.checked(declaration.table(data, "robot"), ROBOT_KEYS, ("robot", 0, None), ("system",))
    name = head.get("name", path.stem)
    dataset = head.get("dataset", name)
    if not _DATASET.fullmatch(dataset):
        where = ("robot", 0, "dataset" if "dataset" in head else "name" if "name" in head else None)
        raise declaration.error(
            where,
            f"数据集名 {dataset!r} 只能用小写字母、数字和下划线（以字母开头）：请在 [robot] 写 dataset = ...",
        )
    listing = _listing(declaration, declaration.table(data, "list"))  # checked in the file's order
    record = _record(declaration, *_fields(declaration, data), dataset, module)
    options = dict(
        system=_system(declaration, head["system"]),
        record=record,
        dataset=dataset,
        title=head.get("title", dataset),
        schedule=head.get("schedule", DEFAULT_SCHEDULE),
        name=name,
        allow=frozenset(head.get("allow", ())),
        **{key: head[key] for key in ("invalid_tolerance", "max_pages") if key in head},
    )
    _check_robot(declaration, head, options, module)
    walk = _walk(listing, record)
    walk.__module__, walk.__name__, walk.__qualname__ = module, name, name
    walk.__doc__ = head.get("doc", options["title"])
    robot(**options)(walk)  # type: ignore[arg-type]
    return _ROBOTS[name]


def declare_all(package: str, folders: list[str]) -> dict[str, str]:
    """Register the robot of every ``*.toml`` in ``folders``; return the files that fail, by module, and why.

    The robots of files since removed or mended are forgotten first: this reads what is there now.
    """
    before = _DECLARED.pop(package, set())
    for name in [n for n, spec in _ROBOTS.items() if spec.module in before]:
        del _ROBOTS[name]
    declared = _DECLARED[package] = set()
    failed: dict[str, str] = {}
    for path in sorted(p for folder in folders for p in Path(folder).glob("*.toml")):
        module = f"{package}.{path.stem}"
        try:
            if module in sys.modules:
                raise RobotDeclarationError(
                    f"{_shown(path)}:1: 与 {_file(module)} 同名，两者都是模块 {module}：请把其中一个改名"
                )
            declare(path, package)
            declared.add(module)
        except Exception as exc:  # one file's mistake must not stop the other robots
            first = next(iter(str(exc).strip().splitlines()), "")
            ours = isinstance(exc, RobotDeclarationError)
            failed[module] = first if ours else f"{_shown(path)}: {type(exc).__name__}: {first}"
    return failed


def _check_robot(
    declaration: Declaration, head: dict[str, Any], options: dict[str, Any], module: str
) -> None:
    """What ``@robot`` would refuse, refused here with the line; and a name another file already has."""
    if len(options["schedule"].split()) != 5:
        raise declaration.error(
            ("robot", 0, "schedule"),
            f"schedule {options['schedule']!r} 不是形如 '0 2 * * *' 的五段 cron 表达式",
        )
    if not 0 <= head.get("invalid_tolerance", 0) < 1:
        raise declaration.error(
            ("robot", 0, "invalid_tolerance"),
            f"invalid_tolerance = {head['invalid_tolerance']} 应是 0 到 1 之间的比例，如 0.01",
        )
    known = _ROBOTS.get(options["name"])
    if known is not None and known.module != module:
        raise declaration.error(
            ("robot", 0, "name" if "name" in head else None),
            f"有两个机器人都叫 {options['name']!r}（{declaration.shown} 和 {_file(known.module)}）："
            '机器人名是全局的：请在 [robot] 写 name = "..." 另起名字',
        )


def _system(declaration: Declaration, name: str) -> System:
    try:
        known = systems()
    except ValueError as exc:
        raise declaration.error(("robot", 0, "system"), str(exc)) from None
    if name not in known:
        raise declaration.error(
            ("robot", 0, "system"),
            f"没有叫 {name!r} 的系统；已声明的系统：{'、'.join(known) or '无'}"
            "（系统在 connectors/ 的模块里以 System(name=...) 声明）",
        )
    return known[name]


Place = Callable[[int, str | None], Where]  # where the n-th field (or one of its keys) is written


def _fields(declaration: Declaration, data: dict[str, Any]) -> tuple[list[Any], Place]:
    """The fields as ``[[field]]`` tables, and where each is written.

    ``[fields]`` is the compact spelling: one line per field, its name the key, its value the
    field's keys (``{title = "姓名", role = "name"}``) or just its title (``gender = "性别"``).
    """
    if "fields" not in data:
        return data.get("field", []), lambda index, key: ("field", index, key)
    if "field" in data:
        raise declaration.error(("field", 0, None), "字段请只用一种写法：[fields] 或 [[field]]，不要两种都写")
    compact = declaration.table(data, "fields")
    names = list(compact)
    fields = [{"name": name, **(v if isinstance(v, dict) else {"title": v})} for name, v in compact.items()]
    return fields, lambda index, key: ("fields", 0, names[index] if index < len(names) else None)


def _record(
    declaration: Declaration, fields: list[Any], place: Place, dataset: str, module: str
) -> type[Record]:
    """The record class the fields declare, as a Python robot would have written it."""
    if not fields:
        raise declaration.error(place(0, None), "没有字段：请在 [fields] 里每个字段写一行")
    definitions: dict[str, Any] = {}
    for index, values in enumerate(fields):
        where = place(index, None)
        declaration.checked(values, FIELD_KEYS, where, ("name", "title"))
        name = values["name"]
        if not _IDENTIFIER.fullmatch(name) or hasattr(Record, name) or name.startswith("model_"):
            raise declaration.error(
                place(index, "name"),
                f"字段名 {name!r} 不可用：请用以字母开头的字母、数字和下划线，"
                "勿以 model_ 开头，也勿用 Record 的方法名",
            )
        if name in definitions:
            raise declaration.error(place(index, "name"), f"字段 {name!r} 写了两次：请删去或改名其中一个")
        kind = TYPES.get(values.get("type", "str"))
        if kind is None:
            raise declaration.error(
                place(index, "type"),
                f"字段 {name} 的 type {values['type']!r} 无效；可用：{'、'.join(TYPES)}",
            )
        role = values.get("role")
        if role is not None and role not in get_args(Role):
            raise declaration.error(
                place(index, "role"),
                f"字段 {name} 没有 {role!r} 这个角色；可用的角色：{'、'.join(get_args(Role))}",
            )
        key, optional = values.get("key", False), values.get("optional", False)
        if key and optional:
            raise declaration.error(
                place(index, "optional"), f"字段 {name} 是键字段，不能是可选的：请去掉 optional = true"
            )
        aliases = values.get("aliases", ())
        meta = Field(None if optional else ..., key=key, role=role, title=values["title"], aliases=aliases)
        definitions[name] = (kind | None if optional else kind, meta)
    if not any(values.get("key") for values in fields):
        raise declaration.error(
            place(0, None), "没有自然键：请给能识别一条记录的字段（如档案编号）写 key = true"
        )
    model = pydantic.create_model(  # type: ignore[call-overload]
        _camel(dataset), __base__=Record, __module__=module, **definitions
    )
    record_spec(model)  # everything it refuses was refused above, with the line
    return model  # type: ignore[no-any-return]


class Listing(NamedTuple):
    """``[list]`` read: its shape and path, the keys for its Walk method, and the keys rows are read by."""

    shape: str
    path: str
    options: dict[str, Any]
    read: dict[str, Any]


def _listing(declaration: Declaration, listed: dict[str, Any]) -> Listing:
    where: Where = ("list", 0, None)
    name = listed.get("shape")
    shape = SHAPES.get(name) if isinstance(name, str) else None
    if shape is None:
        raise declaration.error(
            ("list", 0, "shape"), f"[list] 的 shape 应为 {'、'.join(SHAPES)} 之一，写的是 {_toml(name)}"
        )
    known = {**TABLES["list"], **shape.walk, **shape.read}
    declaration.checked(listed, known, where, ("path", *shape.required))
    path: str = listed["path"]
    options = {key: listed[key] for key in shape.walk if key in listed}
    read = {key: listed[key] for key in shape.read if key in listed}
    if name == "pages" and "{n}" not in path:
        raise declaration.error(("list", 0, "path"), f"path {path!r} 里没有 {{n}}：请在页码所在处写 {{n}}")
    if "frame" in options and not options.get("render"):
        raise declaration.error(("list", 0, "frame"), "frame 里的列表须渲染后读取：请同时写 render = true")
    if shape.read is _LISTED:
        if ("table" in read) == ("cards" in read):
            raise declaration.error(where, '请写明 table = "表格的 CSS" 或 cards = "卡片的 CSS"，二者选一')
        if "table" in read and read.keys() & _CARDS.keys():
            extra = sorted(read.keys() & _CARDS.keys())[0]
            raise declaration.error(("list", 0, extra), f"{extra} 只用于 cards：读表格时请删去它")
    return Listing(name, path, options, read)


def _walk(listing: Listing, record: type[Record]) -> Callable[[Walk], AsyncIterator[dict[str, Any]]]:
    """The walk a Python robot of this shape would be: the Walk method, the rows read into ``record``."""
    shape, path, options, read = listing

    def rows(page: Page) -> list[dict[str, Any]]:
        if "table" in read:
            return page.table(read["table"], record)
        cards = {key: read[key] for key in _CARDS if key in read}
        return page.records(read.get("cards", options.get("item", "")), record, **cards)

    async def walk(w: Walk) -> AsyncIterator[dict[str, Any]]:
        if shape == "excel":
            for row in await w.excel(path, record, **options):
                yield row
            return
        if shape == "api":
            batches: AsyncIterator[Any] = w.api_pages(path, fields=record, **options)
        else:
            batches = {"pages": w.pages, "follow": w.follow, "load_more": w.load_more}[shape](path, **options)
        async with contextlib.aclosing(batches) as each:  # type: ignore[type-var]
            async for batch in each:
                for row in batch if shape == "api" else rows(batch):
                    yield row

    return walk


def _syntax_error(shown: str, message: str) -> RobotDeclarationError:
    """tomllib's own error, at the line it names: ``robots/x.toml:3: TOML 写法有误（…）``."""
    at = _AT.search(message)
    line = at["line"] if at else "1"
    what = message[: at.start()] if at else message
    column = f"第 {at['column']} 列，" if at else ""
    return RobotDeclarationError(f"{shown}:{line}: TOML 写法有误（{column}{what}）：请按 TOML 写法改正此行")


def _written(name: str, value: Any) -> str:
    """How the file spelt a top-level name: ``[x]``, ``[[x]]``, or a bare ``x = ...``."""
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return f"[[{name}]]"
    return f"[{name}]" if isinstance(value, dict) else f"{name} = ..."


def _toml(value: Any) -> str:
    """A value as the file writes it (``true``, ``"yes"``), not as Python would (``True``, ``'yes'``)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _camel(dataset: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in dataset.split("_"))


def _file(module: str) -> str:
    """The file a robot's module was read from: its ``.py``, or else its ``.toml``."""
    loaded = sys.modules.get(module)
    if loaded is not None and getattr(loaded, "__file__", None):
        return _shown(Path(loaded.__file__))  # type: ignore[arg-type]
    package, _, stem = module.rpartition(".")
    for folder in importlib.import_module(package).__path__:
        if (Path(folder) / f"{stem}.toml").exists():
            return _shown(Path(folder) / f"{stem}.toml")
    return module


def _shown(path: Path) -> str:
    """``robots/x.toml``: relative to the working directory if inside it, as ``_why`` shows a ``.py``."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)
