"""``@robot(...)`` registers a walk with its options as data, for the CLI, the scheduler and docs.

Discovery is a glob: every module of ``robots/`` whose name does not start with ``_`` is
the unit's own (the demo robots included) and is imported by ``discover()``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors import System
from store import Record, record_spec

if TYPE_CHECKING:
    from robots._walk import Walk

WalkFunction = Callable[["Walk"], AsyncIterator[Record | dict[str, Any]]]
DEFAULT_SCHEDULE = "0 2 * * *"  # nightly; the scheduler keeps it inside the system's allowed hours
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
            raise RobotDeclarationError(f"robot {robot_name}: system= must be a connectors.System")
        record_spec(record)  # a record without a key or with a bad role fails here, at import
        if len(schedule.split()) != 5:
            raise RobotDeclarationError(
                f"robot {robot_name}: schedule {schedule!r} is not a five-field cron line like '0 2 * * *'"
            )
        if max_pages is not None and max_pages < 1:
            raise RobotDeclarationError(f"robot {robot_name}: max_pages={max_pages} must be at least 1")
        known = _ROBOTS.get(robot_name)
        if known is not None and known.module != walk.__module__:
            raise RobotDeclarationError(
                f"two robots are named {robot_name!r} ({known.module} and {walk.__module__}): pass name="
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
    """Import every robot module of ``package`` and return all registered robots by name."""
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{package}.{info.name}")
        except RobotDeclarationError:
            raise
        except Exception as exc:  # a robot file with a typo must say which file, in one line
            where = f"{package}/{info.name}.py"
            raise RobotDeclarationError(f"{where} could not be loaded: {type(exc).__name__}: {exc}") from exc
    return dict(sorted(_ROBOTS.items()))


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
