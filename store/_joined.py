"""Fields a dataset's records gain from the rest of the snapshot: the grid of a person's household, and
an age.

A system that lists persons seldom says which grid (网格) they live in, but its households do: a record
with a ``household`` field whose household is the key of a dataset that has a ``grid`` field takes that
grid (same community, current records only). So every dataset naming households can be listed and
filtered by grid, whatever the systems that fed it show. A grid harvested on the record itself wins.

The age is the year's difference from the birth year (of a ``birth_date`` field, else of an 18-digit ID
number): a masked page shows the birth year (store._masking), so an age computed to the day would tell
the hidden month and day apart (born before or after today's date); to the year it tells nothing more.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from store._tables import DatasetInfo

GRID_COLUMN = "_grid"  # the grid a record takes from its household's record
AGE_COLUMN = "_age"
GRID_LABEL = "网格"
AGE_LABEL = "年龄"


@dataclass(frozen=True)
class GridSource:
    """Where a dataset's records find their grid: dataset ``dataset``, keyed by household ``key``."""

    field: str  # the household field of the dataset that takes the grid
    dataset: str
    key: str
    grid: str


@dataclass(frozen=True)
class Fields:
    """A dataset's fields as staff read them: its own in declaration order, with the joined ones."""

    columns: list[str]
    labels: dict[str, str]
    roles: dict[str, str]
    grid_from: GridSource | None = None
    age_from: str | None = None  # the birth-date or ID-number field an age is counted from
    joined: tuple[str, ...] = field(default=())

    def label(self, name: str) -> str:
        return self.labels.get(name) or name


def fields_of(info: DatasetInfo, others: Mapping[str, DatasetInfo]) -> Fields:
    """``info``'s fields, with a grid from its households' dataset in ``others`` and an age, where it can
    have them."""
    columns, labels, roles = json.loads(info.columns), json.loads(info.labels), json.loads(info.roles)
    joined: list[str] = []
    grid = None if "grid" in roles.values() else grid_source(roles, info.name, others)
    if grid is not None:
        after = _first(roles, "community") or grid.field
        columns.insert(columns.index(after) + 1, GRID_COLUMN)
        labels[GRID_COLUMN], roles[GRID_COLUMN] = GRID_LABEL, "grid"
        joined.append(GRID_COLUMN)
    born = _first(roles, "birth_date") or _first(roles, "id_number")
    if born is not None:  # beside the birth date, else the name: where staff look for it
        after = born if roles[born] == "birth_date" else _first(roles, "name") or born
        columns.insert(columns.index(after) + 1, AGE_COLUMN)
        labels[AGE_COLUMN] = AGE_LABEL
        joined.append(AGE_COLUMN)
    return Fields(columns, labels, roles, grid, born, tuple(joined))


def grid_source(roles: Mapping[str, str], name: str, others: Mapping[str, DatasetInfo]) -> GridSource | None:
    """The dataset keyed by the household that a record of ``roles`` names, if it has a grid field."""
    household = _first(roles, "household")
    if household is None:
        return None
    for other in others.values():
        their_roles, key = json.loads(other.roles), json.loads(other.key)
        grid = _first(their_roles, "grid")
        if other.name != name and grid and len(key) == 1 and their_roles.get(key[0]) == "household":
            return GridSource(household, other.name, key[0], grid)
    return None


def grid_column(source: GridSource, table: sa.Table, theirs: sa.Table) -> sa.ColumnElement[Any]:
    """The grid of each record of ``table``: its household's, in the same community, if current."""
    return (
        sa.select(theirs.c[source.grid])
        .where(
            theirs.c[source.key] == table.c[source.field],
            theirs.c.scope == table.c.scope,
            theirs.c.gone_run.is_(None),
        )
        .limit(1)
        .scalar_subquery()
    )


def in_grid(source: GridSource, table: sa.Table, theirs: sa.Table, grid: str) -> sa.ColumnElement[bool]:
    """Records whose household's current record is in ``grid`` (in the record's community)."""
    households = sa.select(theirs.c[source.key]).where(
        theirs.c[source.grid] == grid,
        theirs.c.scope == table.c.scope,
        theirs.c.gone_run.is_(None),
    )
    return table.c[source.field].in_(households)


def birth_year(column: sa.ColumnElement[Any], role: str) -> sa.ColumnElement[Any]:
    """The birth year of a ``birth_date`` column, or of an 18-digit ID number; NULL for other shapes."""
    if role == "birth_date":  # cast: PostgreSQL's EXTRACT gives a numeric, which pandas reads as floats
        return sa.cast(sa.extract("year", column), sa.Integer)
    whole = sa.func.length(column) == 18
    return sa.case((whole, sa.cast(sa.func.substr(column, 7, 4), sa.Integer)))


def age(column: sa.ColumnElement[Any], role: str) -> sa.ColumnElement[Any]:
    """The age this year of a record born per ``column`` (see the module's docstring)."""
    return sa.literal(dt.date.today().year) - birth_year(column, role)


def _first(roles: Mapping[str, str], role: str) -> str | None:
    return next((f for f, r in roles.items() if r == role), None)
