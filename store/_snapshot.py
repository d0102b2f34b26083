"""Reading the snapshot: queries, one person across datasets, one household, freshness, export.

Everything that leaves here is masked unless the caller reveals it for a stated reason,
and every reveal and export is written to the append-only audit table.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import functools
import json
import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, select

from machine import utc_now
from store._export import ExportNote, selection_words, write_export
from store._idnumber import normalize_id_number
from store._joined import AGE_COLUMN, GRID_COLUMN, Fields, fields_of, grid_column, in_grid
from store._joined import age as joined_age
from store._masking import MASKED_ROLES, mask_frame, mask_value, scrub_value
from store._search import SearchIndex, TextIndex, is_number_search, mask_number_search, search_supported
from store._search_pg import PgSearchIndex
from store._tables import Audit, Change, DatasetInfo, Run, _now, key_text

if TYPE_CHECKING:  # pandas costs a run's start-up most of a second: imported where a frame is made
    import pandas as pd

SEARCHED_ROLES = ("name", "id_number", "phone", "address")
REF_COLUMN = "_ref"
P = ParamSpec("P")
R = TypeVar("R")
Ages = tuple[int | None, int | None] | None  # lowest and highest age, inclusive; None: any
PROVENANCE_LABELS = {"scope": "社区", "flags": "数据标记", "gone": "已注销", "dataset": "数据集"}


class RevealRefused(PermissionError):
    """Personal data was asked for unmasked without a reason."""


class UnknownDataset(LookupError):
    """No dataset of that name has been harvested yet."""


@dataclass(frozen=True)
class Access:
    """Who is reading and whether they reveal; a reveal needs a reason, which goes to the audit table.

    ``grant`` names a reveal already audited for this reader (the desk's short-lived reveal grant,
    written to the audit table when it was given): reads under it show the data without a new entry.
    """

    actor: str = "cli"
    reveal: bool = False
    reason: str = ""
    grant: str = ""

    @property
    def audited_now(self) -> bool:
        """Does a reveal under this access write its own audit entry?"""
        return self.reveal and not self.grant

    def check(self) -> None:
        if self.reveal and len(self.reason.strip()) < 2:
            raise RevealRefused('显示完整信息需要说明理由：请加上 --reason "…"，写明为什么需要完整信息')


@dataclass(frozen=True)
class _Known:
    """The dataset infos as of ``version`` (their count and latest stamp), and their fields."""

    version: tuple[Any, ...]
    infos: dict[str, DatasetInfo]
    fields: dict[str, Fields] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Freshness:
    dataset: str
    last_good: dt.datetime | None
    age_hours: float | None
    runs: int
    failures_since: int


def _pinning(method: Callable[Concatenate[Snapshot, P], R]) -> Callable[Concatenate[Snapshot, P], R]:
    """The method's reads take one look at the dataset infos (``Snapshot.pinned``)."""

    @functools.wraps(method)
    def pinned(self: Snapshot, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.pinned():
            return method(self, *args, **kwargs)

    return pinned


class Snapshot:
    """The read side of the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tables: dict[str, tuple[str, sa.Table]] = {}
        self._indexed: set[str] = set()
        self._cache: _Known | None = None
        self._pin: contextvars.ContextVar[_Known | None] = contextvars.ContextVar("pinned", default=None)

    def datasets(self) -> list[DatasetInfo]:
        return list(self._known().infos.values())

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Reads inside take the dataset infos as they were at its start, checked once: a desk page
        makes a dozen reads, and checking them each time cost a fifth of a search. (A context
        variable: it follows a request into the thread that serves it, and no further.)"""
        if self._pin.get() is not None:
            yield
            return
        token = self._pin.set(self._known())
        try:
            yield
        finally:
            self._pin.reset(token)

    def _known(self) -> _Known:
        """Every dataset's info and fields, read again only when a harvest has written one: reading
        them was a third of a search's work. Every store write of an info stamps ``updated_at``, so
        the count and the latest stamp change with it."""
        pinned = self._pin.get()
        if pinned is not None:
            return pinned
        infos = DatasetInfo.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            version = tuple(conn.execute(sa.select(sa.func.count(), sa.func.max(infos.c.updated_at))).one())
            known = self._cache
            if known is None or known.version != version:
                rows = conn.execute(sa.select(infos).order_by(infos.c.name)).mappings()
                known = self._cache = _Known(version, {row["name"]: DatasetInfo(**row) for row in rows})
        return known

    def scopes(self) -> list[str]:
        """The communities (scopes) the snapshot holds runs of (none on a database nothing harvested into)."""
        if not sa.inspect(self.engine).has_table(Run.__tablename__):
            return []
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.select(Run.scope).distinct().order_by(Run.scope)))  # type: ignore[arg-type]

    def query(
        self,
        dataset: str,
        *,
        where: Mapping[str, Any] | None = None,
        contains: Mapping[str, str] | None = None,
        search: str = "",
        scope: str | None = None,
        absent_from: str | None = None,
        ages: Ages = None,
        include_gone: bool = False,
        limit: int | None = None,
        offset: int = 0,
        refs: bool = False,
        access: Access = Access(),
    ) -> pd.DataFrame:
        """Current records of ``dataset`` as a DataFrame, masked unless ``access`` reveals them.

        ``where`` matches fields exactly, ``contains`` by a part of their text (a tag in "独居老人,低保");
        ``absent_from`` keeps the records whose person has no current record in that other dataset
        (of the same scope): 独居老人 without an elderly-care record; ``ages`` (lowest, highest, either
        None) keeps the records whose age (``AGE_COLUMN``) is within them.
        A dataset naming households is filtered by grid as ``where={GRID_COLUMN: …}`` when its grid
        comes from its households' records (see ``fields``).
        ``refs`` adds a column ``_ref``: the record's ID number unmasked, for a caller that links to
        ``person()`` without showing it (the desk seals it into its links).
        ``search`` looks into the searched fields (names, ID and phone numbers, addresses); under a
        masked access an ID or phone number matches only whole or by the digits its mask shows.
        A reveal is audited, and so is a search for a number (see ``_audit_read``).
        """
        access.check()
        selection = _selection(where, contains, search, scope, absent_from, ages)
        frame = self._read(
            dataset,
            selection,
            include_gone=include_gone,
            limit=limit,
            offset=offset,
            refs=refs,
            access=access,
        )
        self._audit_read(access, dataset, selection, len(frame))
        return frame

    def search(
        self, text: str, *, scope: str | None = None, limit: int | None = None, access: Access = Access()
    ) -> dict[str, pd.DataFrame]:
        """``query(search=text, refs=True)`` over every dataset that has searched fields, by dataset:
        one search box, so one audit entry."""
        access.check()
        selection = {"search": text, "scope": scope}
        with self.pinned():
            found = {
                info.name: self._read(info.name, selection, limit=limit, refs=True, access=access)
                for info in self.datasets()
                if searched_fields(json.loads(info.roles))
            }
        self._audit_read(access, None, selection, sum(len(frame) for frame in found.values()))
        return found

    @_pinning
    def _read(
        self,
        dataset: str,
        selection: Mapping[str, Any],
        *,
        include_gone: bool = False,
        limit: int | None = None,
        offset: int = 0,
        refs: bool = False,
        access: Access,
    ) -> pd.DataFrame:
        """``query`` without its audit entry."""
        import pandas as pd

        info, table = self._table(dataset)
        fields = self.fields(dataset)
        roles, search = fields.roles, selection.get("search") or ""
        shown = [self._column(fields, table, c).label(c) for c in fields.columns]
        query = sa.select(*shown, table.c.scope, table.c.flags)
        query = self._filtered(query, info, fields, table, selection, access)
        if include_gone:
            query = query.add_columns(table.c.gone_run.is_not(None).label("gone"))
        else:
            query = query.where(table.c.gone_run.is_(None))
        id_fields = _id_fields(roles)
        if refs:
            ref = table.c[id_fields[0]] if id_fields else sa.null()
            query = query.add_columns(ref.label(REF_COLUMN))
        name = next((f for f, r in roles.items() if r == "name"), None)
        if not search.strip():
            query = query.order_by(*(table.c[k] for k in json.loads(info.key)))
        elif name is not None:
            # A person searched by name comes first when the name is exactly that, then names that
            # start so: 张英 before 张英佳. No other order: sorting every match costs more than the search.
            text = search.strip()
            column = table.c[name]
            starts = column.startswith(text, autoescape=True)
            query = query.order_by(sa.case((column == text, 0), (starts, 1), else_=2))
        query = query.limit(limit).offset(offset or None)
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        return frame if access.reveal else mask_frame(frame, roles, keep=(REF_COLUMN, AGE_COLUMN))

    def _audit_read(
        self, access: Access, dataset: str | None, selection: Mapping[str, Any], rows: int
    ) -> None:
        """A reveal is audited; so is a masked search for a number (ID or phone), the one kind that
        could test a hidden digit. The number is kept masked: the audit is read by people too."""
        search = selection.get("search") or ""
        number = is_number_search(search)
        detail = {**selection, "search": mask_number_search(search)} if number else dict(selection)
        if access.audited_now:
            self.audit(access, "reveal", dataset, detail, rows)
        elif number:
            self.audit(access, "search", dataset, detail, rows)

    def number_searches(self, actor: str, since: dt.datetime) -> int:
        """How many masked searches for a number ``actor`` made since ``since`` (for a rate limit)."""
        query = (
            sa.select(sa.func.count())
            .select_from(Audit)
            .where(Audit.at >= since, Audit.action == "search", Audit.actor == actor)  # type: ignore[arg-type]
        )
        with self.engine.connect() as conn:
            return conn.scalar(query) or 0

    @_pinning
    def count(
        self,
        dataset: str,
        *,
        where: Mapping[str, Any] | None = None,
        contains: Mapping[str, str] | None = None,
        search: str = "",
        scope: str | None = None,
        absent_from: str | None = None,
        ages: Ages = None,
        access: Access = Access(),
    ) -> int:
        """How many current records ``query`` with the same filters and access would return unlimited."""
        info, table = self._table(dataset)
        selection = _selection(where, contains, search, scope, absent_from, ages)
        query = sa.select(sa.func.count()).select_from(table).where(table.c.gone_run.is_(None))
        query = self._filtered(query, info, self.fields(dataset), table, selection, access)
        with self.engine.connect() as conn:
            return conn.scalar(query) or 0

    @_pinning
    def distinct(self, dataset: str, field: str, *, scope: str | None = None, limit: int = 500) -> list[str]:
        """The values a field takes in current records (for filter choices); only unmasked roles."""
        table = self._table(dataset)[1]
        fields = self.fields(dataset)
        role = fields.roles.get(field)
        if role in MASKED_ROLES or field == AGE_COLUMN:
            raise RevealRefused(f"{dataset}.{field} 含个人信息（{role}），不列出它的取值")
        self._check_field(dataset, fields, field)
        if field == GRID_COLUMN and fields.grid_from is not None:  # the grids of its households
            source = fields.grid_from
            table, field = self._table(source.dataset)[1], source.grid
        column = table.c[field]
        query = sa.select(column).distinct().where(table.c.gone_run.is_(None), column.is_not(None))
        if scope is not None:
            query = query.where(table.c.scope == scope)
        with self.engine.connect() as conn:
            return [str(v) for v in conn.execute(query.order_by(column).limit(limit)).scalars()]

    def _filtered(
        self,
        query: sa.Select,
        info: DatasetInfo,
        fields: Fields,
        table: sa.Table,
        selection: Mapping[str, Any],
        access: Access = Access(),
    ) -> sa.Select:
        scope, absent_from = selection.get("scope"), selection.get("absent_from")
        for field, value in (selection.get("where") or {}).items():
            self._check_field(info.name, fields, field)
            if field == GRID_COLUMN and fields.grid_from is not None:
                households = self._table(fields.grid_from.dataset)[1]
                query = query.where(in_grid(fields.grid_from, table, households, value))
            else:
                query = query.where(self._column(fields, table, field) == value)
        for field, part in (selection.get("contains") or {}).items():
            self._check_field(info.name, fields, field)
            query = query.where(part_of(table.c[field], part, self.engine.dialect.name))
        lowest, highest = selection.get("ages") or (None, None)
        if (lowest, highest) != (None, None):
            if fields.age_from is None:
                raise KeyError(f"{info.name} 没有出生日期或身份证号字段，不能按年龄筛选")
            age = joined_age(table.c[fields.age_from], fields.roles[fields.age_from])
            query = query.where(*([age >= lowest] if lowest is not None else []))
            query = query.where(*([age <= highest] if highest is not None else []))
        text = (selection.get("search") or "").strip()
        if text:
            query = self._search(query, info, table, text, masked=not access.reveal)
        if scope is not None:
            scoped = table.c.scope
            if text and self.engine.dialect.name == "sqlite":
                # Unary + keeps SQLite off the scope index: with it, a search walked every record of the
                # community and probed the search index for each (1.5 s at 20,000 persons, not 20 ms).
                scoped = sa.literal_column(f'+"{table.name}".scope')
            query = query.where(scoped == scope)
        if absent_from:
            query = query.where(self._absent(info, table, absent_from, scope))
        return query

    def _absent(self, info: DatasetInfo, table: sa.Table, other: str, scope: str | None) -> sa.ColumnElement:
        """Records whose ID number has no current record in dataset ``other`` (within ``scope``)."""
        other_info, other_table = self._table(other)
        mine, theirs = _id_fields(json.loads(info.roles)), _id_fields(json.loads(other_info.roles))
        if not (mine and theirs):
            raise KeyError(f"{info.name} 和 {other} 并非都有身份证号字段，无法比对")
        known = other_table.c[theirs[0]]
        # NOT IN over one subquery, which SQLite evaluates once into a temporary index; a NULL in it
        # would make NOT IN unknown for every row, so none are selected.
        present = sa.select(known).where(known.is_not(None), other_table.c.gone_run.is_(None))
        if scope is not None:
            present = present.where(other_table.c.scope == scope)
        return table.c[mine[0]].not_in(present)

    @staticmethod
    def _check_field(dataset: str, fields: Fields, field: str) -> None:
        if field not in fields.columns:
            raise KeyError(f"{dataset} 没有字段 {field!r}；它的字段有 {'、'.join(fields.columns)}")

    @_pinning
    def fields(self, dataset: str) -> Fields:
        """The dataset's fields with those it takes from others: a grid from its households' records
        and an age (store._joined)."""
        known = self._known()
        if dataset not in known.fields:
            info, _ = self._table(dataset)
            known.fields[dataset] = fields_of(info, known.infos)
        return known.fields[dataset]

    @_pinning
    def grid_of(self, dataset: str) -> tuple[sa.Table, sa.ColumnElement[Any] | None]:
        """The dataset's table and the grid of each of its rows as a column expression (its own grid
        field, else its household's, see store._joined), or None when its records have no grid.
        For a caller that counts or groups rows by grid (the change history, the overview)."""
        _, table = self._table(dataset)
        fields = self.fields(dataset)
        grid = next((f for f, r in fields.roles.items() if r == "grid"), None)
        return table, self._column(fields, table, grid) if grid else None

    def _column(self, fields: Fields, table: sa.Table, name: str) -> sa.ColumnElement[Any]:
        """A field as a column of its query: its own, or one joined from elsewhere."""
        if name == GRID_COLUMN and fields.grid_from is not None:
            return grid_column(fields.grid_from, table, self._table(fields.grid_from.dataset)[1])
        if name == AGE_COLUMN and fields.age_from is not None:
            return joined_age(table.c[fields.age_from], fields.roles[fields.age_from])
        return table.c[name]

    def _search(
        self, query: sa.Select, info: DatasetInfo, table: sa.Table, text: str, *, masked: bool
    ) -> sa.Select:
        """Rows where ``text`` is part of a searched field: through the FTS5 index where there is one.

        Under a masked access an ID or phone field matches only the whole number or a part of what
        its mask shows (330102, 457X): were the hidden digits searchable, a search per guess would
        read them back one by one. The index finds every row that holds ``text``; the rule then
        keeps those that match as staff see them.
        """
        key, roles = json.loads(info.key), json.loads(info.roles)
        if re.fullmatch(r"[0-9０-９xX]+", text):
            # An ID fragment as typed on a phone, full-width or with a small x.
            text = normalize_id_number(text)
        index = searched_index(self.engine, info.name, key, roles)
        matching = index.keys_matching(text) if index is not None and self._has_index(info.name) else None
        dialect = self.engine.dialect.name
        if matching is None:
            if masked:
                return query.where(_shown_match(table, roles, text, dialect))
            fields = [table.c[field] for field in searched_fields(roles)]
            return query.where(sa.or_(*(part_of(field, text, dialect) for field in fields)))
        found = matching.subquery()
        query = query.join(found, key_text(table, key) == found.c.key)
        hiding = any(roles[field] in _SHOWN_PARTS for field in searched_fields(roles))
        return query.where(_shown_match(table, roles, text, dialect)) if masked and hiding else query

    def _has_index(self, dataset: str) -> bool:
        # Only a found index is remembered: one may appear with a dataset's first harvest.
        if dataset not in self._indexed and sa.inspect(self.engine).has_table(f"search_{dataset}"):
            self._indexed.add(dataset)
        return dataset in self._indexed

    @_pinning
    def person(
        self, id_number: str, *, scope: str | None = None, access: Access = Access()
    ) -> dict[str, pd.DataFrame]:
        """Every record about one person, dataset by dataset (一人一档), joined on ID-number fields."""
        wanted = normalize_id_number(id_number)
        found = {}
        for info in self.datasets():
            for field in _id_fields(json.loads(info.roles)):
                frame = self.query(info.name, where={field: wanted}, scope=scope, access=access)
                if not frame.empty:
                    found[info.name] = frame
        return found

    @_pinning
    def household(
        self, household: str, *, scope: str | None = None, refs: bool = False, access: Access = Access()
    ) -> pd.DataFrame:
        """Everyone recorded at one household (户号), from every dataset that names households."""
        import pandas as pd

        frames = []
        for info in self.datasets():
            for field, role in json.loads(info.roles).items():
                if role == "household":
                    frame = self.query(
                        info.name, where={field: household}, scope=scope, refs=refs, access=access
                    )
                    frames.append(frame.assign(dataset=info.name))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @_pinning
    def history(self, id_number: str, *, scope: str | None = None, access: Access = Access()) -> pd.DataFrame:
        """Every recorded change to one person's records, newest first: a row per changed field
        (``field`` is empty for new, gone and back), values masked by role unless revealed."""
        import pandas as pd

        access.check()
        wanted = normalize_id_number(id_number)
        changes = Change.__table__  # type: ignore[attr-defined]
        rows: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for info in self.datasets():
                roles, labels = json.loads(info.roles), json.loads(info.labels)
                fields = _id_fields(roles)
                if not fields:
                    continue
                _, table = self._table(info.name)
                mine = sa.select(key_text(table, json.loads(info.key))).where(
                    sa.or_(*(table.c[f] == wanted for f in fields))
                )
                if scope is not None:
                    mine = mine.where(table.c.scope == scope)
                # Unary + keeps SQLite on the key index: by the dataset index it read a change row per
                # record of the dataset (0.25 s a person page at a million persons).
                dataset = (
                    sa.literal_column('+"change".dataset')
                    if conn.dialect.name == "sqlite"
                    else changes.c.dataset
                )
                found = sa.select(changes).where(dataset == info.name, changes.c.key.in_(mine))
                for change in conn.execute(found).mappings():
                    diff = json.loads(change["fields"]) if change["fields"] else {"": [None, None]}
                    for field, (before, after) in diff.items():
                        shown = _shown_change(roles.get(field), wanted, masked=not access.reveal)
                        rows.append(
                            {
                                "at": change["at"],
                                "dataset": info.name,
                                "kind": change["kind"],
                                "field": labels.get(field, field),
                                "before": shown(before),
                                "after": shown(after),
                            }
                        )
        frame = pd.DataFrame(rows, columns=["at", "dataset", "kind", "field", "before", "after"])
        if access.audited_now:
            self.audit(access, "reveal", None, {"history_of": wanted, "scope": scope}, len(frame))
        return frame.sort_values("at", ascending=False, kind="stable", ignore_index=True)

    def audits(
        self, *, limit: int = 50, offset: int = 0, actor: str | None = None, action: str | None = None
    ) -> tuple[list[Audit], int]:
        """A page of the audit table, newest first, and how many entries match in all."""
        query = select(Audit)
        if actor:
            query = query.where(Audit.actor == actor)
        if action:
            query = query.where(Audit.action == action)
        with Session(self.engine) as session:
            total = session.exec(select(sa.func.count()).select_from(query.subquery())).one()
            page = session.exec(query.order_by(Audit.id.desc()).limit(limit).offset(offset))  # type: ignore[union-attr]
            return list(page), total

    @_pinning
    def freshness(self) -> list[Freshness]:
        """Per dataset: when it was last harvested well, how long ago, and failures since.

        Two grouped queries, whatever the number of runs: every desk page shows this, and a unit's
        runs pile up by the hundred each night.
        """
        now = _now()
        runs = Run.__table__  # type: ignore[attr-defined]
        good = (
            sa.select(runs.c.dataset, sa.func.max(runs.c.finished_at).label("last"))
            .where(runs.c.status == "ok", runs.c.finished_at.is_not(None))
            .group_by(runs.c.dataset)
            .subquery()
        )
        failed_since = sa.and_(
            runs.c.status != "ok", sa.or_(good.c.last.is_(None), runs.c.started_at > good.c.last)
        )
        totals = (
            sa.select(
                runs.c.dataset,
                sa.func.max(good.c.last),
                sa.func.count(),
                sa.func.sum(sa.case((failed_since, 1), else_=0)),
            )
            .select_from(runs.outerjoin(good, good.c.dataset == runs.c.dataset))
            .group_by(runs.c.dataset)
        )
        with self.engine.connect() as conn:
            found = {row[0]: row[1:] for row in conn.execute(totals)}
        out = []
        for info in self.datasets():
            last, count, failures = found.get(info.name, (None, 0, 0))
            if last is not None and last.tzinfo is None:
                last = last.replace(tzinfo=dt.UTC)  # SQLite hands datetimes back naive
            age = (now - last).total_seconds() / 3600 if last else None
            out.append(Freshness(info.name, last, age, count, int(failures or 0)))
        return out

    def harvested_at(self, dataset: str) -> dt.datetime | None:
        """When ``dataset`` was last harvested well; None if never."""
        return next((f.last_good for f in self.freshness() if f.dataset == dataset), None)

    def export(
        self,
        frame: pd.DataFrame,
        path: Path,
        *,
        dataset: str,
        access: Access = Access(),
        selection: Mapping[str, Any] | None = None,
        titles: Mapping[str, str] | None = None,
        zone: str | None = None,
        communities: Mapping[str, str] | None = None,
    ) -> Path:
        """Write ``frame`` (from ``query``) to .csv or .xlsx (store._export); audited, with ``selection``
        (the query's filters) saying which rows left. ``titles`` (dataset: its title for staff) name
        the sheet and the datasets a filter names; ``zone`` is the unit's time zone for the times."""
        fields = self.fields(dataset)
        if "community" in fields.roles.values():
            frame = frame.drop(columns="scope", errors="ignore")  # the record's own 社区 says it
        note = ExportNote(
            harvested_at=self.harvested_at(dataset),
            filters=selection_words(selection or {}, fields.labels, fields.roles, titles, communities),
            by=access.actor,
            at=utc_now(),
            zone=zone,
        )
        sheet = (titles or {}).get(dataset, dataset)
        write_export(frame.rename(columns=fields.labels | PROVENANCE_LABELS), path, sheet=sheet, note=note)
        detail = {**(selection or {}), "file": path.name, "revealed": access.reveal}
        self.audit(access, "export", dataset, detail, len(frame))
        return path

    def audit(
        self, access: Access, action: str, dataset: str | None, detail: dict[str, Any], rows: int
    ) -> None:
        with Session(self.engine) as session:
            session.add(
                Audit(
                    actor=access.actor,
                    action=action,
                    dataset=dataset,
                    rows=rows,
                    reason=access.reason or None,
                    detail=json.dumps(detail, ensure_ascii=False, default=str),
                )
            )
            session.commit()

    def _table(self, dataset: str) -> tuple[DatasetInfo, sa.Table]:
        info = self._known().infos.get(dataset)
        if info is None:
            known = "、".join(d.name for d in self.datasets()) or "暂无"
            raise UnknownDataset(f"没有数据集 {dataset!r}；已采集的数据集：{known}")
        # Reflected once per column set: a record that gains a field gets a fresh table.
        cached = self._tables.get(dataset)
        if cached is None or cached[0] != info.columns:
            cached = (info.columns, sa.Table(f"snap_{dataset}", sa.MetaData(), autoload_with=self.engine))
            self._tables[dataset] = cached
        return info, cached[1]


def searched_index(
    engine: Engine, dataset: str, key: list[str] | tuple[str, ...], roles: Mapping[str, str]
) -> TextIndex | None:
    """The search index of a dataset's searched fields, where the database supports one: FTS5 on
    SQLite, n-grams in a GIN index on PostgreSQL (store._search_pg, no extension needed)."""
    fields = searched_fields(roles)
    if not fields:
        return None
    if engine.dialect.name == "postgresql":
        return PgSearchIndex(dataset, key, fields)
    return SearchIndex(dataset, key, fields) if _fts_available(engine) else None


def searched_fields(roles: Mapping[str, str]) -> list[str]:
    """The fields a search box looks into, in declaration order."""
    return [field for field, role in roles.items() if role in SEARCHED_ROLES]


@functools.cache
def _fts_available(engine: Engine) -> bool:
    """Asked once per engine: the probe creates a temporary FTS5 table."""
    return search_supported(engine)


def _id_fields(roles: Mapping[str, str]) -> list[str]:
    return [field for field, role in roles.items() if role == "id_number"]


def _shown_id(column: sa.ColumnElement[Any]) -> list[sa.ColumnElement[Any]]:
    """What a masked ID number shows (store._masking): region code and the last four; else nothing."""
    whole = sa.func.length(column) == 18
    return [sa.case((whole, sa.func.substr(column, 1, 6))), sa.case((whole, sa.func.substr(column, 15)))]


def _shown_phone(column: sa.ColumnElement[Any]) -> list[sa.ColumnElement[Any]]:
    """What a masked mobile number shows: its first three and last four digits; else nothing."""
    mobile = sa.and_(sa.func.length(column) == 11, sa.func.substr(column, 1, 1) == "1")
    return [sa.case((mobile, sa.func.substr(column, 1, 3))), sa.case((mobile, sa.func.substr(column, 8)))]


# Other shapes (old 15-digit numbers, landlines) match only whole: fewer hits, never a hidden digit.
_SHOWN_PARTS = {"id_number": _shown_id, "phone": _shown_phone}


def _shown_match(
    table: sa.Table, roles: Mapping[str, str], text: str, dialect: str
) -> sa.ColumnElement[bool]:
    """Rows where ``text`` is in a searched field as a masked page shows it, or is a whole number."""
    conditions: list[sa.ColumnElement[bool]] = []
    for field in searched_fields(roles):
        column, parts = table.c[field], _SHOWN_PARTS.get(roles[field])
        if parts is None:
            conditions.append(part_of(column, text, dialect))
        else:
            conditions += [column == text, *(part_of(part, text, dialect) for part in parts(column))]
    return sa.or_(*conditions)


def part_of(column: sa.ColumnElement[Any], part: str, dialect: str) -> sa.ColumnElement[bool]:
    """``part`` within ``column`` as SQLite's LIKE finds it on every database: ``%`` and ``_`` literal,
    ASCII letters in either case, no other letter folded (PostgreSQL's LIKE folds none, its ILIKE all)."""
    if dialect == "sqlite":
        return column.contains(part, autoescape=True)
    folded = sa.func.translate(sa.cast(column, sa.Text), string.ascii_uppercase, string.ascii_lowercase)
    return folded.contains(part.translate(_ASCII_LOWER), autoescape=True)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _shown_change(role: str | None, id_number: str, *, masked: bool) -> Callable[[Any], Any]:
    """How a changed value of a field of ``role`` is shown in one person's history."""
    if not masked:
        return lambda value: value
    if role is None:
        return lambda value: scrub_value(value, (id_number,))
    return functools.partial(mask_value, role)


def _selection(
    where: Mapping[str, Any] | None,
    contains: Mapping[str, str] | None,
    search: str,
    scope: str | None,
    absent_from: str | None,
    ages: Ages,
) -> dict[str, Any]:
    """A query's filters as one mapping: what ``_filtered`` applies and the audit's ``detail`` says."""
    selection = {
        "where": dict(where or {}),
        "contains": dict(contains or {}),
        "search": search,
        "scope": scope,
        "absent_from": absent_from,
    }
    return selection | ({"ages": list(ages)} if ages and ages != (None, None) else {})
