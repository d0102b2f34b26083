"""The store's tables: runs, change history, and one snapshot and one staging table per dataset."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Field, SQLModel

from machine import utc_now
from store._errors import SchemaMismatch
from store._record import RecordSpec

_SQL_TYPES: dict[type, type[sa.types.TypeEngine]] = {
    str: sa.Text,
    int: sa.BigInteger,
    float: sa.Float,
    Decimal: sa.Text,  # exact on every database: SQLite has no decimal type (RecordSpec.rows writes the text)
    bool: sa.Boolean,
    dt.date: sa.Date,
    dt.datetime: sa.DateTime,
}

_now = utc_now  # the name store._snapshot (not in this change) still imports


class Run(SQLModel, table=True):
    """One robot × account, once."""

    id: str = Field(primary_key=True)
    robot: str
    dataset: str = Field(index=True)
    system: str
    account: str
    scope: str
    status: str = Field(default="running", index=True)  # running / ok / failed / cancelled / killed
    failure_kind: str | None = None
    message: str | None = None
    started_at: dt.datetime = Field(default_factory=utc_now)
    finished_at: dt.datetime | None = None
    pages: int = 0
    seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    gone: int = 0
    back: int = 0
    complete: bool = True
    artifacts: str | None = None
    host: str = ""
    pid: int = 0


class Change(SQLModel, table=True):
    """One real change to one record: new, changed (with the fields before and after), gone, back."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    dataset: str = Field(index=True)
    key: str = Field(index=True)
    kind: str
    fields: str | None = None  # JSON {"field": [before, after]} for changed and back
    at: dt.datetime = Field(default_factory=utc_now)


class DatasetInfo(SQLModel, table=True):
    """What the store knows of a dataset without its record class: key, roles, columns."""

    name: str = Field(primary_key=True)
    model: str
    key: str  # JSON list of field names
    roles: str  # JSON {field: role}
    columns: str  # JSON list of field names, in declaration order
    labels: str = "{}"  # JSON {field: Chinese header}, from each field's title
    updated_at: dt.datetime = Field(default_factory=utc_now)


class Audit(SQLModel, table=True):
    """Append-only record of every reveal, export and purge: who, when, what, why, how many rows."""

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utc_now, index=True)
    actor: str
    action: str  # reveal / export / purge
    dataset: str | None = None
    detail: str | None = None  # the query, as JSON
    reason: str | None = None
    rows: int = 0


def dataset_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name):
        raise ValueError(f"dataset name {name!r}: use lower-case letters, digits and _ (start with a letter)")
    return name


def _record_columns(spec: RecordSpec) -> list[sa.Column[Any]]:
    return [
        sa.Column(c.name, _SQL_TYPES[c.type], primary_key=c.key, nullable=c.nullable) for c in spec.columns
    ]


# Roles the person and household views look records up by: without an index, each person page
# scanned every other dataset (0.4 s at a million persons) and each household page the persons.
LOOKUP_ROLES = ("id_number", "household")
LOOKUP_PREFIX = "lookup_"


def lookup_indexes(dataset: str, spec: RecordSpec) -> list[sa.Index]:
    """One index per field of a lookup role that is not the key on its own."""
    key = [c.name for c in spec.columns if c.key]
    fields = [c.name for c in spec.columns if c.role in LOOKUP_ROLES and [c.name] != key]
    return [sa.Index(f"{LOOKUP_PREFIX}{dataset}_{field}", field) for field in fields]


def snapshot_table(metadata: sa.MetaData, dataset: str, spec: RecordSpec) -> sa.Table:
    return sa.Table(
        f"snap_{dataset_name(dataset)}",
        metadata,
        *_record_columns(spec),
        sa.Column("scope", sa.Text, nullable=False, index=True),
        sa.Column("first_seen_run", sa.Text, nullable=False),
        sa.Column("last_seen_run", sa.Text, nullable=False),
        # Indexed: the search index refreshes the rows a run changed.
        sa.Column("last_changed_run", sa.Text, nullable=False, index=True),
        sa.Column("gone_run", sa.Text, nullable=True),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("flags", sa.Text, nullable=True),
        *lookup_indexes(dataset, spec),
    )


def stage_table(metadata: sa.MetaData, dataset: str, spec: RecordSpec) -> sa.Table:
    """Append-only: no index on the key while a run stages (a B-tree insert at a random place per
    record cost half the staging time); publish sorts the run's rows by key and keeps the last of a key.
    ``seq`` is SQLite's rowid (an INTEGER primary key), so it orders arrivals at no cost."""
    columns = [sa.Column(c.name, _SQL_TYPES[c.type]) for c in spec.columns]  # validated before they come
    return sa.Table(
        f"stage_{dataset_name(dataset)}",
        metadata,
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("run_id", sa.Text, nullable=False),
        *columns,
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("flags", sa.Text, nullable=True),
    )


CREATE_ATTEMPTS = 3


def create_tables(engine: Engine, tables: Sequence[sa.Table]) -> None:
    """Create those of ``tables`` that are missing.

    Processes that start together on a new database (two `harvest run`, a run beside the scheduler,
    a pool of workers) race to create the same tables: the check and the CREATE are two statements, so
    the loser meets "already exists" (on PostgreSQL also a duplicate row of its catalog, when both
    CREATEs were under way at once) and finds the tables made by the winner on its next look.
    """
    for table in tables:
        for attempt in range(CREATE_ATTEMPTS):
            try:
                table.create(engine, checkfirst=True)
                break
            except sa.exc.DBAPIError as exc:
                lost = any(sign in str(exc.orig) for sign in ("already exists", "pg_type_typname_nsp_index"))
                if not lost or attempt == CREATE_ATTEMPTS - 1:
                    raise


def ensure(engine: Engine, table: sa.Table, spec: RecordSpec) -> None:
    """Create ``table``, or upgrade it in place when the record class gained fields."""
    inspector = sa.inspect(engine)
    if not inspector.has_table(table.name):
        create_tables(engine, [table])
        return
    existing = {c["name"]: c for c in inspector.get_columns(table.name)}
    keys = set(inspector.get_pk_constraint(table.name)["constrained_columns"])
    wanted_keys = {c.name for c in table.columns if c.primary_key}
    if "seq" in table.columns and "seq" not in existing:
        _rebuild_stage(engine, table, existing)  # staged by an older version: keyed, no seq
        return
    if keys != wanted_keys:
        raise SchemaMismatch(
            f"{table.name}：自然键从 {sorted(keys)} 变成了 {sorted(wanted_keys)}；"
            "请保留原来的键，或给记录换一个新的数据集名（旧表保持原样）"
        )
    with engine.begin() as conn:
        for column in table.columns:
            if column.name in existing:
                _check_type(table.name, column, existing[column.name]["type"])
                continue
            # A new field: nullable, so the rows already there stay valid until the next harvest fills it.
            ddl = sa.schema.CreateColumn(column).compile(dialect=engine.dialect)
            text = str(ddl).replace("NOT NULL", "")
            conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN {text}'))
        for index in table.indexes:  # a table made before an index was declared gets it now
            index.create(conn, checkfirst=True)


def _rebuild_stage(engine: Engine, table: sa.Table, existing: dict[str, Any]) -> None:
    """Move a staging table of the keyed layout into the append-only one, keeping its rows
    (a run staged by the old layout may still publish or be recovered)."""
    old = f"{table.name}_old"
    kept = ", ".join(f'"{c.name}"' for c in table.columns if c.name in existing)
    with engine.begin() as conn:
        conn.execute(sa.text(f'ALTER TABLE "{table.name}" RENAME TO "{old}"'))
        table.create(conn)
        conn.execute(sa.text(f'INSERT INTO "{table.name}" ({kept}) SELECT {kept} FROM "{old}"'))
        conn.execute(sa.text(f'DROP TABLE "{old}"'))


def _check_type(table: str, wanted: sa.Column, found: sa.types.TypeEngine) -> None:
    if wanted.type._type_affinity is not found._type_affinity and not (
        isinstance(wanted.type, sa.Integer) and isinstance(found, sa.Integer)
    ):
        raise SchemaMismatch(
            f"{table}.{wanted.name} 在数据库里是 {found}，记录类里却是 {wanted.type}："
            "请把字段改回原类型，或用新的字段名存储"
        )


def key_text(table: sa.Table, key: Sequence[str]) -> sa.ColumnElement[Any]:
    """A record's natural key as text: the bare column for one text key (so joins use its index),
    else the parts cast to text and joined with "|"."""
    if len(key) == 1 and isinstance(table.c[key[0]].type, sa.Text):
        return table.c[key[0]]
    parts = [sa.cast(table.c[k], sa.Text) for k in key]
    text = parts[0]
    for part in parts[1:]:
        text = text + "|" + part
    return text
