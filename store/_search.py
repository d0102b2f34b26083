"""Substring search over the snapshot through an SQLite FTS5 index: a fast ``LIKE '%text%'``.

Design (chosen from measurements on SQLite 3.40.1 with 1,000,000 persons):

* ``search_<dataset>``: a contentless FTS5 table with the built-in ``trigram`` tokenizer,
  ``case_sensitive 1``, one column per searched field -- so a phrase never runs across two
  fields.  Values go in as ``lower(value) || SENTINEL``: SQLite's ``lower()`` folds ASCII only,
  exactly like LIKE does, and the query text is folded the same way in Python.  The trigram
  tokenizer keeps every character (spaces, ``%``, ``_``, quotes), so those are searched literally.
* A query of 3+ characters is one FTS5 phrase; the tokenizer turns it into the query's
  overlapping trigrams, which must sit at consecutive positions of one column: that is exactly
  "the text is a substring".  Queries go through MATCH, never through LIKE on the FTS table
  (on 3.40.1 the trigram table's own LIKE support returns wrong results).
* A 2-character query ``ab`` is a substring iff some trigram of a column starts with ``ab``;
  the appended SENTINEL gives a field's last two characters a trigram too.  The trigrams that
  start with ``ab`` are read from an ``fts5vocab`` table (a B-tree range seek) and OR-ed
  together inside the same SELECT.  1-character queries and queries containing the SENTINEL
  get ``None``: the caller keeps its LIKE scan for those.
* ``search_<dataset>_doc`` maps the FTS rowid to the record key and keeps the indexed values:
  a contentless FTS5 table can only forget a row when told the values it was given.
* ``refresh`` is three INSERT ... SELECT statements over the run's rows (old entries out,
  upsert of the kept values, new entries in): SQLite streams them, so memory stays bounded and
  the tokenizing happens in C.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from store._idnumber import normalize_id_number
from store._masking import mask_id_number, mask_phone

SENTINEL = "\U0010fffd"  # appended to every indexed value; a private-use character
_TOP = "\U0010ffff"
# Six digits and more (a check X may end them): a phone's tail, an ID's birth date, a whole number.
_NUMBER_SEARCH = re.compile(r"\d{6,}|\d{5,}X", re.ASCII)
HASH_BYTES = 32 * 1024 * 1024  # FTS5's buffer of new index entries (its 'hashsize'); see ensure()
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def search_supported(engine_or_conn: sa.Engine | sa.Connection) -> bool:
    """True on SQLite with FTS5 (and its trigram tokenizer); PostgreSQL has its own (store._search_pg)."""
    if engine_or_conn.dialect.name != "sqlite":
        return False

    def probe(conn: sa.Connection) -> bool:
        if (conn.dialect.server_version_info or (0,)) < (3, 34, 0):
            return False  # the trigram tokenizer arrived in 3.34
        options = set(conn.exec_driver_sql("PRAGMA compile_options").scalars())
        if "ENABLE_ICU" in options:
            return False  # ICU makes lower() and LIKE fold non-ASCII letters; keep LIKE
        try:
            conn.exec_driver_sql(
                "CREATE VIRTUAL TABLE temp._gh_search_probe"
                " USING fts5(a, tokenize='trigram case_sensitive 1')"
            )
            conn.exec_driver_sql("DROP TABLE temp._gh_search_probe")
        except sa.exc.DBAPIError:
            return False
        return True

    if isinstance(engine_or_conn, sa.Connection):
        return probe(engine_or_conn)
    with engine_or_conn.connect() as conn:
        return probe(conn)


def _number(text: str) -> str:
    return normalize_id_number(text).replace("-", "")


def is_number_search(text: str) -> bool:
    """Whether ``text`` searches for an ID or phone number, or a long part of one: six digits or more.

    Those are the searches that could test a masked number's hidden digits, so they are audited and,
    on the desk, rate-limited; names and addresses are not.
    """
    return bool(_NUMBER_SEARCH.fullmatch(_number(text)))


def mask_number_search(text: str) -> str:
    """A search for a number as the audit keeps it: masked like the phone or ID number it looks like."""
    number = _number(text)
    if not _NUMBER_SEARCH.fullmatch(number):
        return text
    return mask_phone(number) if len(number) == 11 and number[0] == "1" else mask_id_number(number)


class TextIndex(Protocol):
    """What the store asks of a search index: SQLite's (here) or PostgreSQL's (store._search_pg)."""

    dataset: str
    fields: tuple[str, ...]
    name: str  # the table whose presence says the dataset has an index
    tables: tuple[str, ...]  # the tables a rebuild drops

    def lock(self, conn: sa.Connection) -> None:
        """Hold, until the transaction ends, what serialises building an index between processes."""

    def ensure(self, conn: sa.Connection) -> None: ...

    def refresh(self, conn: sa.Connection, snap: sa.Table, run_id: str) -> None: ...

    def keys_matching(self, text: str) -> sa.Select | None: ...


def _phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class FieldsIndex:
    """What a search index of either database is over: ``fields`` of ``snap_<dataset>``, keyed by ``key``;
    its table ``search_<dataset>`` holds field ``i`` as column ``c<i>``."""

    def __init__(self, dataset: str, key: Sequence[str], fields: Sequence[str]) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", dataset):
            raise ValueError(f"dataset name {dataset!r}: use lower-case letters, digits and _")
        if not key or not fields:
            raise ValueError("a search index needs a key and at least one field")
        self.dataset = dataset
        self.key = tuple(key)
        self.fields = tuple(fields)
        self.name = f"search_{dataset}"  # its presence says the dataset has an index
        self._cols = [f"c{i}" for i in range(len(self.fields))]


class SearchIndex(FieldsIndex):
    """Substring index over ``fields`` of ``snap_<dataset>`` on SQLite; keys are the store's key text."""

    def __init__(self, dataset: str, key: Sequence[str], fields: Sequence[str]) -> None:
        super().__init__(dataset, key, fields)
        self.fts_name = self.name
        self.doc_name = f"search_{dataset}_doc"
        self.vocab_name = f"search_{dataset}_vocab"
        self.tables = (self.vocab_name, self.fts_name, self.doc_name)  # what a rebuild drops, in order
        self.fts = sa.table(self.fts_name, sa.column("rowid", sa.Integer))
        self.doc = sa.table(self.doc_name, sa.column("rid", sa.Integer), sa.column("key"))
        self.vocab = sa.table(self.vocab_name, sa.column("term", sa.Text))

    # -- schema ---------------------------------------------------------------------------

    def lock(self, conn: sa.Connection) -> None:
        """The database's write lock, taken by a write that changes nothing: the driver begins the
        transaction only at a write, and runs DDL before one outside any transaction."""
        conn.exec_driver_sql("UPDATE datasetinfo SET name = name WHERE 0")

    def ensure(self, conn: sa.Connection) -> None:
        """Create the index tables if they are missing (idempotent)."""
        cols = ", ".join(self._cols)
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.fts_name} USING fts5("
            f"{cols}, content='', columnsize=0, tokenize='trigram case_sensitive 1')"
        )
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.vocab_name} USING fts5vocab({self.fts_name}, 'row')"
        )
        # FTS5 collects new entries in memory and writes a segment each time they fill its buffer
        # (1 MiB by default); every segment is later merged again.  A larger buffer means fewer,
        # larger segments: building 1M rows' index took 20 s with the default and 11 s with 32 MiB.
        # The buffer is a fixed bound on memory, and the setting is kept in the index's own config.
        if conn.exec_driver_sql(f"SELECT 1 FROM {self.fts_name}_config WHERE k = 'hashsize'").first() is None:
            conn.exec_driver_sql(
                f"INSERT INTO {self.fts_name}({self.fts_name}, rank) VALUES ('hashsize', {HASH_BYTES})"
            )
        conn.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {self.doc_name} ("
            f"rid INTEGER PRIMARY KEY, key NOT NULL UNIQUE, {cols})"
        )

    # -- writing --------------------------------------------------------------------------

    def _key_sql(self, snap: sa.Table) -> str:
        """SQL for the key of a ``s`` row: the column itself, or CAST(..)||'|'||.. when composite."""
        names = [_quote(snap.c[k].name) for k in self.key]
        if len(names) == 1:
            return f"s.{names[0]}"
        return " || '|' || ".join(f"CAST(s.{n} AS TEXT)" for n in names)

    def _indexed(self, alias: str) -> str:
        return ", ".join(f"lower({alias}.{c}) || '{SENTINEL}'" for c in self._cols)

    def refresh(self, conn: sa.Connection, snap: sa.Table, run_id: str) -> None:
        """Re-index the snapshot rows whose ``last_changed_run`` is ``run_id``.

        Runs inside the caller's transaction.  Each statement is one INSERT ... SELECT that SQLite
        streams, so memory does not grow with the number of rows.
        """
        self.ensure(conn)
        fts, doc, cols = self.fts_name, self.doc_name, ", ".join(self._cols)
        key = self._key_sql(snap)
        snap_name = _quote(snap.name)
        fields = ", ".join(f"s.{_quote(snap.c[f].name)}" for f in self.fields)
        run = "s.last_changed_run = :run"
        changed = f"FROM {snap_name} AS s JOIN {doc} AS d ON d.key = {key} WHERE {run}"
        first = conn.exec_driver_sql(f"SELECT 1 FROM {doc} LIMIT 1").first() is None
        # 1. Forget what the index holds for these rows (only rows already indexed are joined).
        if not first:
            conn.execute(
                sa.text(
                    f"INSERT INTO {fts}({fts}, rowid, {cols})"
                    f" SELECT 'delete', d.rid, {self._indexed('d')} {changed}"
                ),
                {"run": run_id},
            )
        # 2. Keep the new values (an existing key keeps its rid).
        updates = ", ".join(f"{c} = excluded.{c}" for c in self._cols)
        conn.execute(
            sa.text(
                f"INSERT INTO {doc}(key, {cols}) SELECT {key}, {fields} FROM {snap_name} AS s WHERE {run} "
                f"ON CONFLICT(key) DO UPDATE SET {updates}"
            ),
            {"run": run_id},
        )
        # 3. Index the new values (on the first build every kept row is new: no join needed).
        source = f"FROM {doc} AS d" if first else changed
        conn.execute(
            sa.text(f"INSERT INTO {fts}(rowid, {cols}) SELECT d.rid, {self._indexed('d')} {source}"),
            {"run": run_id},
        )

    # -- reading --------------------------------------------------------------------------

    def keys_matching(self, text: str) -> sa.Select | None:
        """SELECT (one column, ``key``) of every row with ``text`` inside any indexed field.

        Same rows as ``LIKE '%text%'`` over the fields (``%`` and ``_`` literal).  ``None`` when the
        index cannot answer -- a query shorter than 2 characters -- so the caller keeps LIKE.
        """
        if len(text) < 2 or SENTINEL in text:
            return None
        folded = text.translate(_ASCII_LOWER)
        if len(folded) >= 3:
            match: Any = sa.bindparam(None, _phrase(folded), type_=sa.Text)
        else:
            term = self.vocab.c.term
            any_of = sa.func.group_concat(
                sa.literal('"') + sa.func.replace(term, '"', '""') + sa.literal('"'), " OR "
            )
            nothing = _phrase(folded + SENTINEL + SENTINEL)  # cannot match when no trigram starts with it
            match = (
                sa.select(sa.func.coalesce(any_of, nothing))
                .where(term >= folded, term <= folded + _TOP)
                .scalar_subquery()
            )
        return (
            sa.select(self.doc.c.key)
            .select_from(self.fts.join(self.doc, self.doc.c.rid == self.fts.c.rowid))
            .where(sa.literal_column(self.fts_name).op("MATCH")(match))
        )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
