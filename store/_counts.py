"""Counts at a glance for one community: per grid, how many current records each dataset with a grid
has, per tag of its ``tags`` field and per value of its short category fields (人口类型: 户籍/流动),
and what each count was after each of the last harvests.

A category field is an own field with no role (roles mark personal data and the fields the desk
already filters by), of text type, not the key, taking 2 to ``CATEGORY_MAX`` distinct values in the
community's current records: few values make it a category, not a record's own data.

The past counts are rebuilt from the change history, not stored: the records a later harvest touched
are walked back from what they are now, change by change (new/back: absent before; gone: present
before; changed/back: the fields' earlier values), and each harvest's count is the count now plus what
those records were then minus what they are now. A record keeps the grid of its household as it is
now; a dataset with a grid field of its own moves records between grids as its history says.
Everything is read by a few grouped queries per dataset, never one per grid or per harvest.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store._tables import Change, Run, key_text

if TYPE_CHECKING:
    from store._snapshot import Snapshot

CATEGORY_MAX = 8
HARVESTS = 6  # how many of the last publishing runs the movement covers
Grid = str | None  # None: records whose grid is unknown (their household has no current record)


@dataclass(frozen=True)
class Measure:
    """What is counted: the records (``field`` None), or those whose ``field`` holds ``value``."""

    field: str | None = None
    value: str | None = None
    tags: bool = False  # ``value`` is one tag of a comma-separated tags field, not the whole text


@dataclass(frozen=True)
class Counts:
    """One dataset's counts in one community, by measure and grid."""

    dataset: str
    grid_field: str  # the field (own or joined) the dataset is filtered by grid with
    measures: list[Measure]  # the records first, then each tag, then each category's values
    grids: list[Grid]  # named grids in order, then None if some records have no grid
    now: Mapping[tuple[Measure, Grid], int]
    harvests: list[dt.datetime]  # when each of the last publishing runs finished, oldest first
    after: Mapping[tuple[Measure, Grid], list[int]]  # the count after each of ``harvests``

    def count(self, measure: Measure, grid: Grid) -> int:
        return self.now.get((measure, grid), 0)

    def total(self, measure: Measure) -> int:
        return sum(self.count(measure, grid) for grid in self.grids)

    def trend(self, measure: Measure, grid: Grid) -> list[int]:
        """The count after each harvest (the last is the count now)."""
        return self.after.get((measure, grid)) or [self.count(measure, grid)] * len(self.harvests)

    def total_trend(self, measure: Measure) -> list[int]:
        return [sum(counts) for counts in zip(*(self.trend(measure, g) for g in self.grids), strict=True)]


def community_counts(snapshot: Snapshot, scope: str) -> list[Counts]:
    """The counts of every dataset whose records have a grid, in community ``scope``."""
    out = []
    for info in snapshot.datasets():
        table, grid = snapshot.grid_of(info.name)
        if grid is not None:
            out.append(_dataset_counts(snapshot, info.name, json.loads(info.key), table, grid, scope))
    return out


def split_tags(text: str | None) -> list[str]:
    """The tags of a value like "独居老人,低保" (full-width commas too), each once."""
    parts = (tag.strip() for tag in (text or "").replace("，", ",").split(","))
    return list(dict.fromkeys(tag for tag in parts if tag))


def _dataset_counts(
    snapshot: Snapshot,
    dataset: str,
    key: list[str],
    table: sa.Table,
    grid: sa.ColumnElement[Any],
    scope: str,
) -> Counts:
    fields = snapshot.fields(dataset)
    grid_field = next(f for f, r in fields.roles.items() if r == "grid")
    own_grid = grid_field if grid_field in table.c else None
    tags = next((f for f, r in fields.roles.items() if r == "tags" and f in table.c), None)
    current = sa.and_(table.c.scope == scope, table.c.gone_run.is_(None))
    with snapshot.engine.connect() as conn:
        categories = _categories(
            conn, table, [f for f in fields.columns if f not in fields.roles], key, current
        )
        counted = [f for f in (tags, *categories) if f is not None]
        rows = sa.select(grid.label("_g"), *(table.c[f] for f in counted)).where(current).subquery()
        grouped = sa.select(*rows.c, sa.func.count().label("_n")).group_by(*rows.c)
        now: Counter[tuple[Measure, Grid]] = Counter()
        for row in conn.execute(grouped).mappings():
            for member in _members(row, row["_g"], tags, categories):
                now[member] += row["_n"]
        harvests = _harvests(conn, dataset, scope)
        after = _after(conn, key, table, grid, scope, harvests, now, (tags, categories, own_grid))
    measures = [Measure(), *_values(now, tags, categories)]
    seen = {g for _, g in (*now, *after)}  # a grid emptied since a harvest still shows its fall
    grids: list[Grid] = [
        *sorted((g for g in seen if g is not None), key=_natural),
        *([None] if None in seen else []),
    ]
    return Counts(dataset, grid_field, measures, grids, now, [at for _, at in harvests], after)


def _natural(text: str) -> list[Any]:
    """第2网格 before 第10网格."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _categories(
    conn: sa.Connection, table: sa.Table, unroled: list[str], key: list[str], current: sa.ColumnElement[bool]
) -> list[str]:
    """The un-roled text fields with 2 to CATEGORY_MAX values in the community (see the docstring)."""
    candidates = [
        f for f in unroled if f in table.c and f not in key and isinstance(table.c[f].type, sa.Text)
    ]
    if not candidates:
        return []
    distinct = sa.select(*(sa.func.count(sa.distinct(table.c[f])) for f in candidates)).where(current)
    found = conn.execute(distinct).one()
    return [f for f, n in zip(candidates, found, strict=True) if 2 <= n <= CATEGORY_MAX]


def _members(
    values: Mapping[str, Any], grid: Grid, tags: str | None, categories: Iterable[str]
) -> list[tuple[Measure, Grid]]:
    """The (measure, grid) counts one record of ``values`` adds to."""
    out = [(Measure(), grid)]
    if tags is not None:
        out += [(Measure(tags, tag, tags=True), grid) for tag in split_tags(values[tags])]
    out += [(Measure(f, str(values[f])), grid) for f in categories if values[f] not in (None, "")]
    return out


def _values(
    now: Mapping[tuple[Measure, Grid], int], tags: str | None, categories: list[str]
) -> list[Measure]:
    """The tag and category measures found, tags by how many records have them, values likewise."""
    totals: Counter[Measure] = Counter()
    for (measure, _), n in now.items():
        totals[measure] += n
    order = {field: i for i, field in enumerate([tags, *categories])}
    found = [m for m in totals if m.field is not None]
    return sorted(found, key=lambda m: (order[m.field], -totals[m], m.value))


def _harvests(conn: sa.Connection, dataset: str, scope: str) -> list[tuple[str, dt.datetime]]:
    """The last HARVESTS publishing runs of the dataset in the community, oldest first."""
    runs = Run.__table__.c  # type: ignore[attr-defined]
    query = (
        sa.select(runs.id, runs.finished_at)
        .where(runs.dataset == dataset, runs.scope == scope, runs.status == "ok")
        .order_by(runs.finished_at.desc(), runs.id.desc())
        .limit(HARVESTS)
    )
    return [(run_id, at) for run_id, at in reversed(conn.execute(query).all())]


def _after(
    conn: sa.Connection,
    key: list[str],
    table: sa.Table,
    grid: sa.ColumnElement[Any],
    scope: str,
    harvests: list[tuple[str, dt.datetime]],
    now: Mapping[tuple[Measure, Grid], int],
    counted: tuple[str | None, list[str], str | None],
) -> dict[tuple[Measure, Grid], list[int]]:
    """The count of each (measure, grid) after each harvest, rebuilt from the changes of the harvests
    after the first (see the module's docstring); only counts that moved are listed. A record has one
    change at most per run, and each row of it carries the record as it is now."""
    tags, categories, own_grid = counted
    if len(harvests) < 2:
        return {}
    tracked = [f for f in (tags, *categories, own_grid) if f is not None]
    index = {run_id: i for i, (run_id, _) in enumerate(harvests)}
    changes = Change.__table__.c  # type: ignore[attr-defined]
    query = (
        sa.select(
            changes.key,
            changes.kind,
            changes.run_id,
            changes.fields,
            (sa.and_(table.c.scope == scope, table.c.gone_run.is_(None))).label("_present"),
            grid.label("_grid_now"),
            *(table.c[f] for f in tracked),
        )
        .join(table, changes.key == key_text(table, key))
        # By run only: a run is of one dataset, and the run index finds its few changes where the
        # dataset index would walk every change the dataset ever had.
        .where(changes.run_id.in_(list(index)[1:]))
    )
    by_record: dict[str, list[Any]] = {}
    for row in conn.execute(query).mappings():
        by_record.setdefault(row["key"], []).append(row)
    moved: Counter[tuple[int, Measure, Grid]] = Counter()
    for rows in by_record.values():
        present, values = bool(rows[0]["_present"]), {f: rows[0][f] for f in tracked}
        fixed = rows[0]["_grid_now"]  # the grid of its household now, if it takes its household's

        def members(
            present: bool, values: Mapping[str, Any], fixed: Grid = fixed
        ) -> set[tuple[Measure, Grid]]:
            grid_then = values[own_grid] if own_grid else fixed
            return set(_members(values, grid_then, tags, categories)) if present else set()

        ours, changes_of = members(present, values), {index[r["run_id"]]: r for r in rows}
        for i in range(len(harvests) - 1, -1, -1):  # the state after harvest i, walking back
            for member in members(present, values) ^ ours:
                moved[(i, *member)] += -1 if member in ours else 1
            if i in changes_of:
                present, values = _undo(changes_of[i], values)
    after: dict[tuple[Measure, Grid], list[int]] = {}
    for i, measure, grid_then in moved:
        counts = after.setdefault((measure, grid_then), [now.get((measure, grid_then), 0)] * len(harvests))
        counts[i] += moved[(i, measure, grid_then)]
    return after


def _undo(change: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    """A record's presence and values before ``change``, from its values after it: a new or returning
    record was absent, a changed or gone one present, and a diff gives the earlier values."""
    before = dict(values)
    for field, (earlier, _) in json.loads(change["fields"] or "{}").items():
        if field in before:
            before[field] = earlier
    return change["kind"] in ("changed", "gone"), before
