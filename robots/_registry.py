"""``@robot(...)`` registers a walk with its options as data, for the CLI, the scheduler and docs.

Discovery is a glob: every module of ``robots/`` whose name does not start with ``_`` is
the unit's own (the demo robots included) and is imported by ``discover()``; one that fails to
import is kept aside by ``broken()`` while the others run.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors import System
from store import Record, record_spec

if TYPE_CHECKING:
    from robots._walk import Walk

WalkFunction = Callable[["Walk"], AsyncIterator[Record | dict[str, Any]]]
DEFAULT_SCHEDULE = "0 2 * * *"  # nightly; the scheduler keeps it inside the system's allowed hours
FRAMEWORK_MODULES = frozenset({"robots.runtime", "robots.testing"})  # public framework modules, not robots
INVALID_TOLERANCE = 0.01  # share of rows that may fail validation before the layout counts as changed


class RobotDeclarationError(TypeError):
    """A robot declared in a way the runtime cannot run; the message names the fix."""


@dataclass(frozen=True)
class RobotSpec:
    """A registered robot, read back as data."""

    name: str
    walk: WalkFunction
    system: System
    record: type[Record]
    dataset: str
    title: str  # the dataset's name for staff, in Chinese: 人口信息
    schedule: str
    allow: frozenset[str]  # resource types (image, font, media) this robot needs loaded
    invalid_tolerance: float
    max_pages: int | None  # pages one list may have before the walk stops as drift; None: HARVEST_MAX_PAGES
    module: str
    doc: str


_ROBOTS: dict[str, RobotSpec] = {}
_BROKEN: dict[str, str] = {}  # module name → why it did not import


def robot(
    *,
    system: System,
    record: type[Record],
    dataset: str | None = None,
    title: str | None = None,
    schedule: str = DEFAULT_SCHEDULE,
    name: str | None = None,
    allow: frozenset[str] | set[str] = frozenset(),
    invalid_tolerance: float = INVALID_TOLERANCE,
    max_pages: int | None = None,
) -> Callable[[WalkFunction], WalkFunction]:
    """Register an async generator function of one ``Walk`` that yields the records it reads.

    ``dataset`` defaults to the function's name and ``title`` (what staff read on the desk) to the
    dataset; ``schedule`` is a five-field cron line. ``max_pages`` raises (or lowers) the pages one
    list may have, ``HARVEST_MAX_PAGES`` otherwise: a walk that reaches it stops as drift.
    """

    def register(walk: WalkFunction) -> WalkFunction:
        robot_name = name or walk.__name__
        if not isinstance(system, System):
            raise RobotDeclarationError(f"机器人 {robot_name}：system= 必须是一个 connectors.System")
        record_spec(record)  # a record without a key or with a bad role fails here, at import
        if len(schedule.split()) != 5:
            raise RobotDeclarationError(
                f"机器人 {robot_name}：schedule {schedule!r} 不是形如 '0 2 * * *' 的五段 cron 表达式"
            )
        if max_pages is not None and max_pages < 1:
            raise RobotDeclarationError(f"机器人 {robot_name}：max_pages={max_pages} 至少应为 1")
        known = _ROBOTS.get(robot_name)
        if known is not None and known.module != walk.__module__:
            from robots._declared import _file  # it imports this module: the files only when they clash

            raise RobotDeclarationError(
                f"有两个机器人都叫 {robot_name!r}（{_file(known.module)} 和 {_file(walk.__module__)}）："
                "机器人名和数据集名是全局的，不分文件：请用 name= 给其中一个另起名字"
            )
        _ROBOTS[robot_name] = RobotSpec(
            name=robot_name,
            walk=walk,
            system=system,
            record=record,
            dataset=dataset or robot_name,
            title=title or dataset or robot_name,
            schedule=schedule,
            allow=frozenset(allow),
            invalid_tolerance=invalid_tolerance,
            max_pages=max_pages,
            module=walk.__module__,
            doc=next(iter((walk.__doc__ or "").strip().splitlines()), ""),
        )
        return walk

    return register


def discover(package: str = "robots") -> dict[str, RobotSpec]:
    """Import every robot module of ``package``, read its ``*.toml`` robots, and return the robots by name.

    One robot file that does not import (a typo, a missing import, a bad declaration) must not stop
    the others: its robots are left out and ``broken()`` says which file failed, where and why.
    """
    module = importlib.import_module(package)
    for name in [name for name in _BROKEN if name.startswith(f"{package}.")]:
        del _BROKEN[name]  # what this discovery finds broken, not a file since mended or removed
    for info in pkgutil.iter_modules(module.__path__):
        if info.name.startswith("_") or f"{package}.{info.name}" in FRAMEWORK_MODULES:
            continue
        name = f"{package}.{info.name}"
        try:
            importlib.import_module(name)
        except Exception as exc:
            folder = Path(getattr(info.module_finder, "path", "."))
            source = folder / info.name / "__init__.py" if info.ispkg else folder / f"{info.name}.py"
            _BROKEN[name] = _why(exc, source.resolve())
            for robot_name in [n for n, spec in _ROBOTS.items() if spec.module == name]:
                del _ROBOTS[robot_name]  # registered before the line that failed: half a file is not run
    from robots._declared import declare_all  # it registers through robot() above

    _BROKEN.update(declare_all(package, list(module.__path__)))  # after the .py: a clash names the .toml
    return dict(sorted(_ROBOTS.items()))


def broken(package: str = "robots") -> dict[str, str]:
    """Modules of ``package`` its last ``discover()`` could not import, by module name, with one line why."""
    return {name: why for name, why in sorted(_BROKEN.items()) if name.startswith(f"{package}.")}


def _why(exc: Exception, source: Path) -> str:
    """``robots/x.py:3: SyntaxError: invalid syntax``: where in the file it failed, and the error."""
    if isinstance(exc, SyntaxError) and exc.filename:  # maybe in a file the robot imports
        where, line, text = Path(exc.filename), exc.lineno, exc.msg
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f.lineno for f in frames if Path(f.filename).resolve() == source]
        where, line, text = source, own[-1] if own else None, str(exc)
    with contextlib.suppress(ValueError):  # a file outside the working directory keeps its full path
        where = where.relative_to(Path.cwd())
    first = next(iter(text.strip().splitlines()), "")
    return f"{where}{'' if line is None else f':{line}'}: {type(exc).__name__}: {first}"


def dataset_titles() -> dict[str, str]:
    """Each discovered dataset's title for staff (人口信息), by dataset name.

    Several robots may fill one dataset; a title one of them gives wins over the others' default.
    """
    titles: dict[str, str] = {}
    for spec in discover().values():
        if spec.title != spec.dataset or spec.dataset not in titles:
            titles[spec.dataset] = spec.title
    return titles


def registered() -> dict[str, RobotSpec]:
    """The robots registered so far (``discover()`` imports the rest)."""
    return dict(sorted(_ROBOTS.items()))
