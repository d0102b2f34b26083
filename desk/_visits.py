"""排摸 lists (door-to-door checks): a saved list of households to visit, and what was found at each.

A list is made from the filters of a persons dataset's page (a grid, a tag, 未登记于 another dataset,
an age band) and fixes its households when it is made: a harvest publishing while a list is being
walked must not reshuffle it. Only household numbers are kept, in the order they are walked (by
address); what a block shows of them (address, members, who matches) is read from the snapshot,
masked and scoped, each time it is shown. Marks are appended, never updated: a household's last mark
is its state, the earlier ones its history. Nothing here is ever written to a source system.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from desk import _views as views
from desk._links import Sealer
from machine import utc_now
from store import REF_COLUMN, Access, Snapshot, create_tables, scrub_text

OUTCOMES = {"visited": "已走访", "not_home": "不在家", "moved": "已搬离", "changed": "信息有变"}
NOTE_CHARS = 200
UNCHECKED = "未走访"


class VisitList(SQLModel, table=True):
    """One 排摸 list: who made it for which community and grid, and the filter that chose its persons."""

    __tablename__ = "desk_visit_list"

    id: int | None = Field(default=None, primary_key=True)
    title: str
    community: str = Field(index=True)
    grid: str
    # The Snapshot.query arguments that chose its persons (where, contains, absent_from, ages), as JSON.
    selection: str
    persons: str  # the dataset its persons come from
    households: str | None  # the dataset keyed by household its addresses come from
    made_by: str
    made_at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))

    def chosen(self) -> dict[str, Any]:
        """The list's filter as ``Snapshot.query``/``count`` arguments, bound to its community."""
        stored = json.loads(self.selection)
        ages = stored.get("ages")
        return stored | {"scope": self.community, "ages": tuple(ages) if ages else None}


class VisitHousehold(SQLModel, table=True):
    """A household of a list, at its place in the walking order."""

    __tablename__ = "desk_visit_household"

    list_id: int = Field(primary_key=True)
    position: int = Field(primary_key=True)
    household: str


class VisitMark(SQLModel, table=True):
    """What a worker found at a household; the household's last mark wins, earlier ones stay as history."""

    __tablename__ = "desk_visit_mark"

    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(index=True)
    household: str
    outcome: str  # a key of OUTCOMES
    note: str = ""
    by: str
    at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))

    @property
    def outcome_text(self) -> str:
        return OUTCOMES.get(self.outcome, self.outcome)

    @property
    def shown_note(self) -> str:
        """The note as a masked page shows it: a worker may type a new phone or ID number into it."""
        return scrub_text(self.note)


LISTS: sa.Table = VisitList.__table__  # type: ignore[attr-defined]
HOUSEHOLDS: sa.Table = VisitHousehold.__table__  # type: ignore[attr-defined]
MARKS: sa.Table = VisitMark.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Progress:
    checked: int
    total: int


class Visits:
    """The desk's own tables of 排摸 lists and their marks, in the snapshot database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(engine, [LISTS, HOUSEHOLDS, MARKS])

    def make(self, made: VisitList, households: list[str]) -> VisitList:
        """Save ``made`` with ``households`` in their walking order, in one transaction."""
        with Session(self.engine) as session:
            session.add(made)
            session.flush()
            session.add_all(
                VisitHousehold(list_id=made.id, position=n, household=h) for n, h in enumerate(households, 1)
            )
            session.commit()
            session.refresh(made)
            return made

    def get(self, list_id: int) -> VisitList | None:
        with Session(self.engine) as session:
            return session.get(VisitList, list_id)

    def lists(self, community: str | None) -> list[VisitList]:
        """The lists of ``community`` (every community's for None), newest first."""
        query = select(VisitList).order_by(LISTS.c.id.desc())
        if community is not None:
            query = query.where(VisitList.community == community)
        with Session(self.engine) as session:
            return list(session.exec(query))

    def households(self, list_id: int) -> list[str]:
        query = select(VisitHousehold.household).where(VisitHousehold.list_id == list_id)
        with Session(self.engine) as session:
            return list(session.exec(query.order_by(HOUSEHOLDS.c.position)))

    def mark(self, list_id: int, household: str, outcome: str, note: str, by: str) -> VisitMark:
        if outcome not in OUTCOMES:
            raise ValueError(f"没有走访结果 {outcome!r}：用 {'、'.join(OUTCOMES.values())} 之一")
        mark = VisitMark(
            list_id=list_id, household=household, outcome=outcome, note=note[:NOTE_CHARS], by=by, at=utc_now()
        )
        with Session(self.engine) as session:
            session.add(mark)
            session.commit()
            session.refresh(mark)
            return mark

    def marks(self, list_id: int) -> dict[str, VisitMark]:
        """Each marked household's last mark."""
        query = select(VisitMark).where(VisitMark.list_id == list_id).order_by(MARKS.c.id)
        with Session(self.engine) as session:
            return {mark.household: mark for mark in session.exec(query)}

    def history(self, list_id: int, household: str) -> list[VisitMark]:
        """Every mark of one household, newest first."""
        query = select(VisitMark).where(VisitMark.list_id == list_id, VisitMark.household == household)
        with Session(self.engine) as session:
            return list(session.exec(query.order_by(MARKS.c.id.desc())))

    def progress(self, list_ids: Iterable[int]) -> dict[int, Progress]:
        """Checked (marked at least once) and total households of each list, two queries for all."""
        ids = list(list_ids)
        with self.engine.connect() as conn:
            totals = dict(
                conn.execute(
                    sa.select(HOUSEHOLDS.c.list_id, sa.func.count())
                    .where(HOUSEHOLDS.c.list_id.in_(ids))
                    .group_by(HOUSEHOLDS.c.list_id)
                ).all()
            )
            checked = dict(
                conn.execute(
                    sa.select(MARKS.c.list_id, sa.func.count(sa.distinct(MARKS.c.household)))
                    .where(MARKS.c.list_id.in_(ids))
                    .group_by(MARKS.c.list_id)
                ).all()
            )
        return {i: Progress(checked.get(i, 0), totals.get(i, 0)) for i in ids}


# -- what the snapshot says of a list ------------------------------------------------------------------


def persons_view(catalog: Mapping[str, views.DatasetView]) -> views.DatasetView | None:
    """The dataset a list's persons come from: the first naming persons by ID number and household."""
    return next((v for v in catalog.values() if v.field("id_number") and v.field("household")), None)


def households_dataset(snapshot: Snapshot, persons: str) -> str | None:
    """The dataset keyed by household a list's addresses come from: the one its persons take their grid
    from, else the first keyed by household."""
    source = snapshot.fields(persons).grid_from
    own = sorted(views.household_datasets(snapshot) - {persons})
    return source.dataset if source is not None else next(iter(own), None)


def title_of(grid: str, selection: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    """A list's default title, its filter in words: ``第2网格 独居老人 未登记于养老服务 60岁及以上``."""
    words = [grid, *(selection.get("contains") or {}).values()]
    if selection.get("absent_from"):
        words.append(f"未登记于{titles.get(selection['absent_from'], selection['absent_from'])}")
    lowest, highest = selection.get("ages") or (None, None)
    if lowest is not None and highest is not None:
        words.append(f"{lowest}至{highest}岁")
    elif lowest is not None:
        words.append(f"{lowest}岁及以上")
    elif highest is not None:
        words.append(f"{highest}岁及以下")
    return " ".join(words)


def choose(
    snapshot: Snapshot, persons: views.DatasetView, households: str | None, made: VisitList
) -> list[str]:
    """The households of the persons matching ``made``'s filter, in walking order: by their record's
    address (sorted in the database, so no address leaves it unmasked), those without one last."""
    field = str(persons.field("household"))
    frame = snapshot.query(persons.name, **made.chosen(), access=Access(actor=made.made_by))
    numbers = sorted({str(v) for v in frame[field].dropna() if str(v)})
    if households is None or not numbers:
        return numbers
    table, _ = snapshot.grid_of(households)
    roles = snapshot.fields(households).roles
    key, address = (
        next((f for f, r in roles.items() if r == role), None) for role in ("household", "address")
    )
    query = sa.select(table.c[key]).where(
        table.c[key].in_(numbers), table.c.scope == made.community, table.c.gone_run.is_(None)
    )
    with snapshot.engine.connect() as conn:
        ordered = [
            str(n)
            for n in conn.scalars(query.order_by(*([table.c[address]] if address else []), table.c[key]))
        ]
    placed = set(ordered)
    return ordered + [n for n in numbers if n not in placed]


@dataclass(frozen=True)
class Block:
    """One household of a list as its pages show it, masked."""

    position: int
    household: str
    address: str
    members: list[views.Member]  # the head first
    matched: frozenset[str]  # the members (link tokens) matching the list's filter
    mark: VisitMark | None

    @property
    def state(self) -> str:
        return self.mark.outcome_text if self.mark else UNCHECKED


def blocks(
    snapshot: Snapshot,
    catalog: Mapping[str, views.DatasetView],
    made: VisitList,
    households: list[str],
    marks: Mapping[str, VisitMark],
    sealer: Sealer,
    access: Access,
) -> list[Block]:
    """The list's households as blocks, read now from the snapshot (masked, in the list's community)."""
    persons = catalog[made.persons]
    field, grid = str(persons.field("household")), persons.field("grid")
    wanted = set(households)
    scope = {"scope": made.community, "refs": True, "access": access}
    # Members of the list's grid in one read; a household since moved to another grid, one read each.
    frame = snapshot.query(made.persons, where={grid: made.grid} if grid else {}, **scope)
    frame = frame[frame[field].astype(str).isin(wanted)]
    missing = wanted - set(frame[field].astype(str))
    frame = pd.concat(
        [frame, *(snapshot.query(made.persons, where={field: n}, **scope) for n in sorted(missing))],
        ignore_index=True,
    )
    matching = set(snapshot.query(made.persons, **made.chosen(), refs=True, access=access)[REF_COLUMN])
    members: dict[str, list[views.Member]] = {n: [] for n in households}
    matched: dict[str, set[str]] = {n: set() for n in households}
    for row in frame.to_dict(orient="records"):
        number, ref = str(row[field]), row.get(REF_COLUMN)
        member = views.Member(token=sealer.seal(ref) if isinstance(ref, str) and ref else "")
        views.merge_into(member, persons, row)
        relation = persons.field("relation")
        member.relation = views.text(row.get(relation)) if relation else ""
        members[number].append(member)
        if ref in matching:
            matched[number].add(member.token)
    addresses = _addresses(snapshot, catalog, made, access)
    return [
        Block(
            position=n,
            household=number,
            address=addresses.get(number) or next((m.address for m in members[number] if m.address), ""),
            members=views.head_first(members[number], ""),
            matched=frozenset(matched[number]),
            mark=marks.get(number),
        )
        for n, number in enumerate(households, 1)
    ]


def _addresses(
    snapshot: Snapshot, catalog: Mapping[str, views.DatasetView], made: VisitList, access: Access
) -> dict[str, str]:
    """Household number -> its record's address, masked, for the households of the list's grid."""
    view = catalog.get(made.households or "")
    if view is None or not (view.field("household") and view.field("address")):
        return {}
    grid = view.field("grid")
    frame = snapshot.query(
        view.name, where={grid: made.grid} if grid else {}, scope=made.community, access=access
    )
    numbers = frame[str(view.field("household"))].astype(str)
    return dict(zip(numbers, frame[str(view.field("address"))].map(views.text), strict=True))


# -- the report ------------------------------------------------------------------------------------


def counts(made: VisitList, households: list[str], marks: Mapping[str, VisitMark]) -> list[dict[str, Any]]:
    """The report's counts per grid: households, checked, each outcome, unchecked."""
    listed = set(households)
    outcomes = [m.outcome for n, m in marks.items() if n in listed]
    row: dict[str, Any] = {"网格": made.grid, "户数": len(households), "已排摸": len(outcomes)}
    row |= {label: outcomes.count(key) for key, label in OUTCOMES.items()}
    return [row | {UNCHECKED: len(households) - len(outcomes)}]


def report_rows(made: VisitList, found: list[Block], zone: str | None) -> pd.DataFrame:
    """The report's households: where, what was found, by whom and when (masked)."""
    rows = [
        {
            "序号": b.position,
            "户号": b.household,
            "住址": b.address,
            "人数": len(b.members),
            "走访结果": b.state,
            "备注": b.mark.shown_note if b.mark else "",
            "登记人": b.mark.by if b.mark else "",
            "登记时间": views.local_time(b.mark.at, zone) if b.mark else "",
        }
        for b in found
    ]
    return pd.DataFrame(
        rows, columns=["序号", "户号", "住址", "人数", "走访结果", "备注", "登记人", "登记时间"]
    )


def member_rows(persons: views.DatasetView, found: list[Block], zone: str | None) -> pd.DataFrame:
    """A list as a spreadsheet: a row per member, under its household (masked)."""
    relation = persons.field("relation")
    rows = []
    for b in found:
        for m in b.members or [views.Member(token="")]:  # a household nobody is recorded at stays listed
            row = {"序号": b.position, "户号": b.household, "住址": b.address, "姓名": m.name}
            row |= {"身份证号": m.id_number, "年龄": m.age}
            row |= {persons.label(relation): m.relation} if relation else {}
            row |= {"标签": m.tags, "符合条件": "是" if m.token and m.token in b.matched else ""}
            row |= {"走访结果": b.state, "备注": b.mark.shown_note if b.mark else ""}
            rows.append(row | {"登记时间": views.local_time(b.mark.at, zone) if b.mark else ""})
    return pd.DataFrame(rows)
