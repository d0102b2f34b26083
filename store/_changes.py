"""What changed in a community since a moment, grid by grid: arrivals, departures, changed fields and
new tags (the desk's 本期变动 page and the daily digest of each grid worker).

Read from the change history (``Change``), joined to each change's snapshot row for the record's grid
(``Snapshot.grid_of``), name, ID number and tags: a gone record keeps its row (``gone_run`` set), so it
still says who left and from which grid. One query per dataset, whatever the number of changes.

Values are masked by role as ``Snapshot.history`` masks them; the ID number comes back unmasked only as
``ref``, for a caller that seals it into a link (as ``REF_COLUMN``) and never shows it.
A community's first harvest of a dataset makes every record "new": those are counted as ``initial``,
not listed as arrivals, since nobody arrived.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from store._snapshot import Snapshot, _shown_change
from store._tables import Change, DatasetInfo, Run, key_text

ARRIVED = ("new", "back")


@dataclass(frozen=True)
class FieldChange:
    label: str
    before: Any  # masked
    after: Any


@dataclass(frozen=True)
class Changed:
    """One change to one record, as staff may see it."""

    dataset: str
    kind: str  # new / changed / gone / back
    at: dt.datetime
    grid: str | None
    name: str  # masked; "" when the dataset names no one
    ref: str | None  # the ID number, unmasked: for a sealed link only
    household: str | None
    fields: tuple[FieldChange, ...] = ()  # changed fields, without tags only added (those are new_tags)
    new_tags: tuple[str, ...] = ()


@dataclass
class GridChanges:
    """The changes of one grid (None: records whose grid is unknown), by what staff ask about."""

    grid: str | None
    arrived: list[Changed] = field(default_factory=list)  # 新迁入/新增 (new, back)
    gone: list[Changed] = field(default_factory=list)  # 迁出/注销
    changed: list[Changed] = field(default_factory=list)  # 信息变更
    tagged: list[Changed] = field(default_factory=list)  # 新增标签

    @property
    def total(self) -> int:
        return len(self.arrived) + len(self.gone) + len(self.changed) + len(self.tagged)

    def add(self, change: Changed) -> None:
        if change.kind in ARRIVED:
            self.arrived.append(change)
        elif change.kind == "gone":
            self.gone.append(change)
        elif change.fields:
            self.changed.append(change)
        if change.new_tags:
            self.tagged.append(change)


@dataclass
class Changes:
    """A community's changes since ``since`` (up to ``until``), grid by grid in grid order."""

    scope: str
    since: dt.datetime
    until: dt.datetime | None
    grids: dict[str | None, GridChanges] = field(default_factory=dict)
    initial: int = 0  # records of a first harvest, not listed

    @property
    def total(self) -> int:
        return sum(g.total for g in self.grids.values())

    def of(self, grid: str | None) -> GridChanges:
        """The changes of ``grid`` (empty when it had none)."""
        return self.grids.get(grid) or GridChanges(grid)


def changes_since(
    snapshot: Snapshot,
    since: dt.datetime,
    *,
    scope: str,
    grid: str | None = None,
    until: dt.datetime | None = None,
) -> Changes:
    """The changes to records of community ``scope`` published from ``since`` (to ``until``), masked;
    only those of ``grid`` when one is given (datasets without grids then have none)."""
    found = Changes(scope, since, until)
    items: list[Changed] = []
    with snapshot.engine.connect() as conn:
        for info in snapshot.datasets():
            items += _dataset_changes(snapshot, conn, info, found, grid)
    for item in sorted(items, key=lambda c: (c.grid is None, c.grid or "", c.at)):
        found.grids.setdefault(item.grid, GridChanges(item.grid)).add(item)
    return found


def _dataset_changes(
    snapshot: Snapshot, conn: sa.Connection, info: DatasetInfo, found: Changes, grid: str | None
) -> list[Changed]:
    dataset = info.name
    table, grid_column = snapshot.grid_of(dataset)
    if grid is not None and grid_column is None:
        return []
    fields = snapshot.fields(dataset)
    roles = fields.roles
    runs = sa.select(Run.id).where(Run.dataset == dataset, Run.scope == found.scope)  # type: ignore[arg-type]
    first = _first_run(conn, dataset, found.scope)
    changes = Change.__table__  # type: ignore[attr-defined]
    moments = [changes.c.at >= found.since, *([changes.c.at < found.until] if found.until else [])]
    window = [changes.c.run_id.in_(runs), *moments]
    if first is not None:
        initial = sa.select(sa.func.count()).where(changes.c.run_id == first, *moments)
        found.initial += conn.scalar(initial) or 0
        window.append(changes.c.run_id != first)
    # A record that moved to another community since has that community's grid: not this one's.
    here = sa.case((table.c.scope == found.scope, grid_column)) if grid_column is not None else sa.null()
    wanted = {role: _first(roles, role) for role in ("name", "id_number", "household", "tags")}
    query = (
        sa.select(
            changes.c.kind,
            changes.c.fields,
            changes.c.at,
            here.label("grid"),
            *((table.c[column] if column else sa.null()).label(role) for role, column in wanted.items()),
        )
        .select_from(changes.join(table, key_text(table, json.loads(info.key)) == changes.c.key))
        .where(*window)
        .order_by(changes.c.at, changes.c.id)
    )
    if grid is not None:
        query = query.where(here == grid)
    return [
        _changed(dataset, row, fields.labels, roles, wanted["tags"]) for row in conn.execute(query).mappings()
    ]


def _changed(
    dataset: str,
    row: sa.RowMapping,
    labels: dict[str, str],
    roles: dict[str, str],
    tags_field: str | None,
) -> Changed:
    ref = row["id_number"] or None
    diff: dict[str, list[Any]] = json.loads(row["fields"]) if row["fields"] else {}
    new_tags: tuple[str, ...] = ()
    if row["kind"] == "new":
        new_tags = tuple(_tags(row["tags"]))
    elif tags_field in diff:
        before, after = (_tags(value) for value in diff[tags_field])
        new_tags = tuple(tag for tag in after if tag not in before)
        if new_tags and set(before) <= set(after):
            del diff[tags_field]  # tags only added: told as new tags, not as a changed field
    return Changed(
        dataset=dataset,
        kind=row["kind"],
        at=row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=dt.UTC),  # SQLite's are naive
        grid=row["grid"],
        name=str(_shown_change("name", ref or "", masked=True)(row["name"]) or ""),
        ref=ref,
        household=row["household"],
        fields=tuple(
            FieldChange(
                labels.get(name, name), *map(_shown_change(roles.get(name), ref or "", masked=True), values)
            )
            for name, values in diff.items()
        ),
        new_tags=new_tags,
    )


def _first_run(conn: sa.Connection, dataset: str, scope: str) -> str | None:
    """The community's first good harvest of the dataset: its records were found, not new."""
    query = (
        sa.select(Run.id)
        .where(Run.dataset == dataset, Run.scope == scope, Run.status == "ok")  # type: ignore[arg-type]
        .order_by(Run.started_at)  # type: ignore[arg-type]
        .limit(1)
    )
    return conn.scalar(query)


def _tags(value: Any) -> list[str]:
    """Tags of a value like "独居老人,低保" (or with a full-width comma), in order."""
    if not isinstance(value, str):
        return []
    return [tag.strip() for tag in value.replace("，", ",").split(",") if tag.strip()]


def _first(roles: dict[str, str], role: str) -> str | None:
    return next((name for name, r in roles.items() if r == role), None)
