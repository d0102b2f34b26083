"""Substring search over the snapshot on PostgreSQL: the same rows as SQLite's FTS5 index, no extension.

SQLite's search (store._search) answers exactly ``LIKE '%text%'`` over the searched fields, folding
ASCII letters only.  PostgreSQL's own tools differ: ``lower()`` and ``ILIKE`` fold non-ASCII letters
too (É, Ω) under a ``C.UTF-8`` or ``zh_CN`` locale, ``pg_trgm`` takes no trigram from a 2-character
query (a full scan for every 2-character name) and may not be creatable by the store's user, and
Debian's PostgreSQL ships no ``pg_bigm``.  So this index uses only what every PostgreSQL has:

* ``search_<dataset>``: the record key and each searched field folded with
  ``translate(v, 'A..Z', 'a..z')`` -- ASCII letters only, like SQLite.
* A GIN index on ``search_grams_v1(c0, c1, ...)``: a ``tsvector`` (built by ``array_to_tsvector``, so
  nothing is parsed, stemmed or folded) of each field's trigrams and its last two characters.  The
  grams live only in the index, which compresses its posting lists; nothing is stored per gram.
* A query of 3+ characters asks for the documents holding all its trigrams; a 2-character one
  ``ab`` for those with a gram that starts with ``ab`` (a prefix query, a range of the GIN's
  B-tree of grams): ``ab`` is in a field iff a trigram of it starts so or the field ends so.
  Every candidate is then tested exactly with ``strpos`` on the folded fields, so the grams only
  ever narrow, never decide.  1-character queries scan with ``strpos`` alone.
* The grams are not split by kind: bigrams of every position would make the index a third
  larger and add nothing a prefix query over the trigrams does not give (a two-digit bigram, in
  nearly every ID and phone number, would not even narrow).
* ``refresh`` is one INSERT ... ON CONFLICT over the run's changed rows, done in the server; a
  document whose searched values did not change is not rewritten.  Into an empty table the whole
  snapshot goes at once and the GIN index is built after it (one sort, not a million inserts).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from store._search import FieldsIndex
from store._tables import key_text

GRAMS = "search_grams_v1"  # versioned: a change of what is kept needs a new function and new indexes
# Each field's trigrams and last two characters, as lexemes taken verbatim; the query side is _tsquery().
_GRAMS_SQL = f"""
CREATE FUNCTION {GRAMS}(VARIADIC fields text[]) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE grams text[] := '{{}}'; v text; n int;
BEGIN
  FOREACH v IN ARRAY fields LOOP
    n := coalesce(length(v), 0);
    FOR i IN 1 .. n - 2 LOOP grams := array_append(grams, substr(v, i, 3)); END LOOP;
    IF n >= 2 THEN grams := array_append(grams, substr(v, n - 1)); END IF;
  END LOOP;
  RETURN array_to_tsvector(grams);
END $$
"""
_LOCK = 0x67685F73  # pg_advisory_xact_lock key serialising search DDL between processes ("gh_s")
_UPPER, _LOWER = string.ascii_uppercase, string.ascii_lowercase
_ASCII_LOWER = str.maketrans(_UPPER, _LOWER)
BUILD_MEMORY = "256MB"  # maintenance_work_mem for the GIN build: fewer, larger sorted runs


class PgSearchIndex(FieldsIndex):
    """Substring index over ``fields`` of ``snap_<dataset>`` on PostgreSQL; keys are the store's key text."""

    def __init__(self, dataset: str, key: Sequence[str], fields: Sequence[str]) -> None:
        super().__init__(dataset, key, fields)
        self.tables = (self.name,)  # what a rebuild drops (the GIN index goes with it)
        self._gin = f"search_{dataset}_grams"
        self._grams = f"{GRAMS}({', '.join(self._cols)})"
        columns = [sa.column(c, sa.Text) for c in ["key", *self._cols]]
        self.doc = sa.table(self.name, *columns)

    # -- schema ---------------------------------------------------------------------------

    def ensure(self, conn: sa.Connection) -> None:
        """Create the function, table and index if missing (idempotent, safe between processes).

        The lock is taken only when something is missing, so a publish of another dataset never waits.
        What exists is read from the catalogs by query, never by ``to_regprocedure``/``to_regclass``:
        those go through the backend's catalog cache, which keeps a "not found" until the backend
        takes in other sessions' changes (on a relation lock or at a transaction's start, not on an
        advisory lock), so a process that looked before the lock would still find no function after
        another one had made it, and fail its own CREATE FUNCTION with "already exists".
        """
        if self._missing(conn):
            self.lock(conn)
            if not conn.execute(self._exists(), self._names()).one()[0]:
                conn.exec_driver_sql(_GRAMS_SQL)
            cols = ", ".join(f"{c} text" for c in self._cols)
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {self.name} (key text PRIMARY KEY, {cols})")
            self._index(conn)

    def lock(self, conn: sa.Connection) -> None:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK)))

    def _missing(self, conn: sa.Connection) -> bool:
        return not all(conn.execute(self._exists(), self._names()).one())

    def _names(self) -> dict[str, str]:
        return {"function": GRAMS, "table": self.name, "index": self._gin}

    @staticmethod
    def _exists() -> sa.TextClause:
        """Whether the grams function, the table and its GIN index exist in the current schema."""
        relation = (
            "EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = :{} AND n.nspname = current_schema())"
        )
        function = (
            "EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.proname = :function AND n.nspname = current_schema())"
        )
        return sa.text(f"SELECT {function}, {relation.format('table')}, {relation.format('index')}")

    def _index(self, conn: sa.Connection) -> None:
        conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
        index = f"CREATE INDEX IF NOT EXISTS {self._gin} ON {self.name} USING gin ({self._grams})"
        conn.exec_driver_sql(index)

    # -- writing --------------------------------------------------------------------------

    def refresh(self, conn: sa.Connection, snap: sa.Table, run_id: str) -> None:
        """Re-index the snapshot rows whose ``last_changed_run`` is ``run_id``, inside the caller's
        transaction; into an empty index, every row of the snapshot (an empty index of a snapshot
        that has rows is never right)."""
        self.ensure(conn)
        folded = [_fold(snap.c[f]) for f in self.fields]
        rows = sa.select(key_text(snap, self.key), *folded)
        empty = conn.execute(sa.select(sa.literal(1)).select_from(self.doc).limit(1)).first() is None
        if empty:
            conn.exec_driver_sql(f"DROP INDEX {self._gin}")  # built once after the rows, not row by row
        else:
            rows = rows.where(snap.c.last_changed_run == run_id)
        insert = postgresql.insert(self.doc).from_select(["key", *self._cols], rows)
        mine = sa.tuple_(*(self.doc.c[c] for c in self._cols))
        theirs = sa.tuple_(*(insert.excluded[c] for c in self._cols))
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["key"],
                set_={c: insert.excluded[c] for c in self._cols},
                where=mine.is_distinct_from(theirs),  # unchanged values: no new row version, no GIN work
            )
        )
        if empty:
            self._index(conn)
            # The planner's estimate of a gram's rows comes from the statistics of the index's
            # expression; without them it guesses, and may join a million snapshot rows to few matches.
            conn.exec_driver_sql(f"ANALYZE {self.name}")

    # -- reading --------------------------------------------------------------------------

    def keys_matching(self, text: str) -> sa.Select:
        """SELECT (one column, ``key``) of every row with ``text`` inside any indexed field.

        Same rows as SQLite's ``LIKE '%text%'`` over the fields (``%`` and ``_`` literal, ASCII letters
        folded), for every text: unlike SQLite's index it never declines.
        """
        query = sa.select(self.doc.c.key)
        if "\x00" in text:
            return query.where(sa.false())  # PostgreSQL text cannot hold NUL, so no value holds it
        folded = text.translate(_ASCII_LOWER)
        query = query.where(sa.or_(*(sa.func.strpos(self.doc.c[c], folded) > 0 for c in self._cols)))
        if len(folded) < 2:
            return query
        wanted = sa.cast(sa.bindparam(None, _tsquery(folded), type_=sa.Text), postgresql.TSQUERY)
        return query.where(sa.literal_column(self._grams).op("@@")(wanted))


def _tsquery(folded: str) -> str:
    """All trigrams of a text of 3+ characters; for 2 characters, any gram that starts with them."""
    if len(folded) == 2:
        return _lexeme(folded) + ":*"
    return " & ".join(_lexeme(gram) for gram in sorted({folded[i : i + 3] for i in range(len(folded) - 2)}))


def _lexeme(gram: str) -> str:
    """A tsquery lexeme taken verbatim: quoted, its quotes doubled and backslashes escaped."""
    return "'" + gram.replace("\\", "\\\\").replace("'", "''") + "'"


def _fold(column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """ASCII letters to lower case, nothing else (SQLite's lower() and LIKE); lower() would fold É too."""
    return sa.func.translate(sa.cast(column, sa.Text), _UPPER, _LOWER)
