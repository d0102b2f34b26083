"""Where what a walk yields becomes records: the one drift check every run, check and replay share.

A row is a record once the record class validates it; the field with role ``community`` is
the account's scope wherever the page does not show one. A few invalid rows are left out and
counted; more than the robot's ``invalid_tolerance`` is drift. When the walk ends, a run that
read nothing (and was not told the list is empty), could not read some table rows, or read fewer
records than the pages stated, ends ``layout_changed``: never ``ok`` with rows it could not read.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from loguru import logger
from pydantic import ValidationError

from connectors import LayoutChanged
from store import Record, record_spec

if TYPE_CHECKING:
    from robots._registry import RobotSpec
    from robots._walk import Walk

EARLY_DRIFT_ROWS = 200  # rows read before the invalid-row tolerance can end a run early


async def validated(robot: RobotSpec, walk: Walk) -> AsyncIterator[Record]:
    """The records of ``robot``'s walk, validated; raises ``LayoutChanged`` when they are not the list."""
    model = robot.record
    community = _community_field(model)
    read = invalid = 0
    first_error = ""
    async with contextlib.aclosing(robot.walk(walk)) as items:  # type: ignore[type-var]
        async for item in items:
            read += 1
            if isinstance(item, model):
                yield item
                continue
            if community is not None and item.get(community) in (None, ""):
                item = {**item, community: walk.scope}
            try:
                record = model.model_validate(item)
            except ValidationError as exc:
                invalid += 1
                first_error = first_error or _first_error(exc)
                if read >= EARLY_DRIFT_ROWS and invalid > robot.invalid_tolerance * read:
                    break
                continue
            yield record
    if invalid > robot.invalid_tolerance * read:
        raise LayoutChanged(
            f"读到的 {read} 行中有 {invalid} 行不符合 {model.__name__}（第一处：{first_error}）："
            "页面布局或数据格式可能已变化"
        )
    if invalid:
        logger.warning("有 {} 行（共 {} 行）未通过校验，已略去（第一处：{}）", invalid, read, first_error)
    check_whole(robot, walk, read)


def check_whole(robot: RobotSpec, walk: Walk, read: int) -> None:
    """A run never ends ``ok`` with rows it could not read, with nothing read, or short of the stated total.

    Zero records pass only where the system positively said so (a stated total of 0, or an
    empty-table row such as 暂无数据 and no rows anywhere): a first run that reads nothing is otherwise
    the sign of a table it does not understand, and the shrink guard cannot catch a first run.
    """
    tally, expected = walk.tally, walk.expected
    rows = read + tally.dropped
    if tally.dropped > robot.invalid_tolerance * rows:
        raise LayoutChanged(
            f"表格的 {rows} 行中有 {tally.dropped} 行无法读入 {robot.record.__name__}（单元格少于所列的列）："
            "表格布局可能已变化；请查看 last-page.html"
        )
    if tally.dropped:
        logger.warning("有 {} 行表格行（共 {} 行）无法读取，已略去", tally.dropped, rows)
    # An empty-table row counts only where no page had rows: the page after the last says 暂无数据 too.
    said_empty = expected == 0 or (expected is None and tally.said_empty and tally.rows == 0)
    if read == 0 and not said_empty:
        raise LayoutChanged(
            f"读了 {walk.pages_read} 页却没有找到任何记录，系统也没有说列表为空：机器人的选择器或列名"
            "可能与页面不符；请查看 last-page.html"
        )
    if expected is not None and read < expected:
        raise LayoutChanged(
            f"系统显示列表共有 {expected} 条记录，却只读到 {read} 条：有页面被漏读（机器人可能没读对翻页），"
            "没有发布任何数据；请查看 last-page.html"
        )


def _community_field(model: type[Record]) -> str | None:
    return next((c.name for c in record_spec(model).columns if c.role == "community"), None)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"

