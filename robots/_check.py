"""What ``harvest check`` shows of a trial: a masked sample of the records under their Chinese titles,
what was read against the total the system states, and whether the robot is ready to run.

A check prints records a person reads at a terminal, so they leave as the desk shows them: masked
a whole record at a time, by role (``store``'s masking), never an ID number, phone or name in full.
"""

from __future__ import annotations

import math

from rich.markup import escape
from rich.table import Table

from robots._registry import RobotSpec
from robots._runner import Trial
from settings import Settings
from store import mask_frame, record_spec


def sample_table(robot: RobotSpec, trial: Trial, limit: int) -> Table:
    """The first ``limit`` records of ``trial``, masked, one column per field headed by its title."""
    import pandas as pd  # `harvest check` only; `harvest run` does not wait for it

    spec = record_spec(robot.record)
    shown = trial.records[:limit]
    frame = pd.DataFrame([record.model_dump() for record in shown], columns=list(spec.names))
    masked = mask_frame(frame, spec.roles)
    table = Table(title=escape(f"{robot.title}（{robot.name}）：前 {len(shown)} 条，已脱敏"))
    for name in spec.names:
        table.add_column(escape(spec.labels[name]))
    for row in masked.itertuples(index=False):
        table.add_row(*(escape("" if pd.isna(value) else str(value)) for value in row))
    return table


def findings(robot: RobotSpec, trial: Trial, settings: Settings) -> list[str]:
    """What the check read, each a line: pages and records against the stated total, the pages the
    whole list would take against the robot's page limit, and the rows left out."""
    read = f"已读 {trial.pages:,} 页 {len(trial.records):,} 条"
    if trial.whole:
        read = f"已读完整个列表：{trial.pages:,} 页 {len(trial.records):,} 条"
    lines = [_against_total(trial, read)]
    cap = robot.max_pages or settings.max_pages
    needed = _pages_needed(trial)
    if needed is not None and needed > cap:
        lines.append(
            f"整个列表约需 {needed:,} 页，超过每个列表的页数上限 {cap:,} 页：运行会在第 {cap:,} 页按 "
            "layout_changed 停止；请在 @robot 中设 max_pages= 或调大 HARVEST_MAX_PAGES"
        )
    if trial.invalid:
        lines.append(
            f"有 {trial.invalid:,} 行未能读成记录（未通过 {robot.record.__name__} 的校验或单元格不全）："
            f"运行时超过 {robot.invalid_tolerance:.0%} 即按 layout_changed 停止"
        )
    return lines


def _against_total(trial: Trial, read: str) -> str:
    """``read`` set against the stated total: whether the pages read so far agree with it."""
    expected, records = trial.expected, len(trial.records)
    if expected is None:
        return f"系统没有显示记录总数；{read}"
    stated = f"系统显示共 {expected:,} 条；{read}"
    if records > expected:
        return f"{stated}，比总数还多，与总数不符：机器人读到的总数可能不是这个列表的；请对照列表页核对"
    needed = _pages_needed(trial)
    if trial.whole or needed is None:
        return f"{stated}，与总数相符"
    return f"{stated}，按每页 {trial.first_page:,} 条约需 {needed:,} 页，与总数相符"


def _pages_needed(trial: Trial) -> int | None:
    """The pages the stated total takes at the first page's size; None where either is unknown."""
    if trial.expected is None or not trial.first_page or trial.whole:
        return None
    return math.ceil(trial.expected / trial.first_page)


def verdict(robot: RobotSpec, trial: Trial) -> str:
    """The check's last line: ready to run (naming the command), or why not and what to do."""
    if trial.status == "ok":
        return f"结论：可以运行：`harvest run {robot.name} --account {trial.account}`"
    where = f"（现场证据：{trial.artifacts}）" if trial.artifacts else ""
    if trial.kind is None:  # skipped outside the allowed hours: nothing wrong with the robot
        return f"结论：{trial.message}"
    return f"{trial.kind}：{trial.message}{where}"
