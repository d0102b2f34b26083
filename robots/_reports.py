"""What a run tells: its report when it ends, a check's trial, and the hooks that hear of it as it goes.

``RunHooks`` is the runner's one extension point. The terminal's progress bar (``RichProgress``),
the run log (``RunLog``, always on) and the scheduler's failure policy with its alerts are hooks;
a ``Harvester`` calls each hook it was given, in order, for every run: ``started`` once the run
has an id, ``advanced`` as pages and records arrive, ``finished`` with its report however it ended
(a run refused before it began, parked or busy, included).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from loguru import logger

from connectors import failure_class
from store import Record


class Outcome:
    """What a run's report and a check's trial share: how it ended, and the exit code that says so."""

    status: str
    kind: str | None

    @property
    def exit_code(self) -> int:
        if self.status in ("ok", "skipped"):
            return 0
        return failure_class(self.kind).exit_code


@dataclass(frozen=True)
class RunReport(Outcome):
    """How one robot × account run ended, for the terminal, the scheduler and alerts."""

    robot: str
    system: str
    account: str
    dataset: str
    status: str  # ok / failed / cancelled / parked / skipped / busy (another run held the account)
    kind: str | None = None  # a HarvestFailure kind: bad_credentials, locked, …, disk_full, account_busy
    message: str = ""
    run_id: str | None = None
    records: int = 0
    pages: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    gone: int = 0
    back: int = 0
    seconds: float = 0.0
    logins: int = 0
    artifacts: str | None = None


@dataclass(frozen=True)
class Trial(Outcome):
    """What ``harvest check`` read of a robot's first pages, validated and never staged."""

    robot: str
    system: str
    account: str
    dataset: str
    scope: str
    status: str  # as a run's: ok / failed / parked / skipped / busy
    kind: str | None = None
    message: str = ""
    records: list[Record] = dataclasses.field(default_factory=list)
    pages: int = 0  # the pages the records came from
    expected: int | None = None  # the total the system stated (walk.expected)
    first_page: int = 0  # rows on the first page: the page size the stated total is measured in
    invalid: int = 0  # rows read that did not become records (failed validation, or cells missing)
    whole: bool = False  # the walk read the list to its end and passed a run's end-of-walk checks
    seconds: float = 0.0
    artifacts: str | None = None


Report = TypeVar("_Report", RunReport, Trial)


@dataclass(frozen=True)
class Ending:
    """How a run or a check ended without records: refused before logging in, or failed."""

    status: str
    kind: str | None
    message: str
    artifacts: str | None = None

    def onto(self, report: Report) -> Report:
        return dataclasses.replace(report, **dataclasses.asdict(self))


class RunHooks(Protocol):
    """What a run tells as it goes; ``key`` is ``robot/account``, one per run at a time."""

    def started(self, key: str, report: RunReport) -> None: ...

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None: ...

    def finished(self, key: str, report: RunReport) -> None: ...


class RunLog:
    """The run log's two lines per run: started (id, robot, account) and how it ended."""

    def started(self, key: str, report: RunReport) -> None:
        run = (report.run_id or "")[:8]
        logger.info("运行 {} 开始：{}，账号 {}/{}", run, report.robot, report.system, report.account)

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None:
        pass

    def finished(self, key: str, report: RunReport) -> None:
        if report.run_id is None:  # refused before it began: parked, busy, outside the hours
            logger.info("{} 未运行：{}", key, report.message)
            return
        run = logger.bind(run=report.run_id[:8])
        log = run.info if report.status == "ok" else run.error
        said = f"（{report.kind}）：{report.message}" if report.kind else ""
        log("运行 {} 结束：{}{}", report.run_id[:8], report.status, said)


class Hooks:
    """Several hooks heard as one, in the order given."""

    def __init__(self, hooks: Sequence[RunHooks]) -> None:
        self.hooks = tuple(hooks)

    def started(self, key: str, report: RunReport) -> None:
        for hook in self.hooks:
            hook.started(key, report)

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None:
        for hook in self.hooks:
            hook.advanced(key, pages=pages, records=records)

    def finished(self, key: str, report: RunReport) -> None:
        for hook in self.hooks:
            hook.finished(key, report)
