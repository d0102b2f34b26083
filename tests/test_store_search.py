"""The search index answers exactly like SQLite's LIKE '%text%' over the searched fields: SQLite's FTS5
index and PostgreSQL's n-gram index (store._search_pg), each against LIKE on an SQLite copy of the rows."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence

import pytest
import sqlalchemy as sa

from sandbox import generate_world
from store._search import SENTINEL, SearchIndex, TextIndex, search_supported
from store._search_pg import PgSearchIndex
from tests.conftest import DATABASES

FIELDS = ("name", "id_number", "phone", "address")
Like = Callable[[str], frozenset[str]]


def _snap(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "snap_people",
        metadata,
        sa.Column("id_number", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("address", sa.Text),
        sa.Column("last_changed_run", sa.Text, nullable=False),
        sa.Column("gone_run", sa.Text, nullable=True),
    )


@pytest.fixture(scope="module")
def world_rows() -> list[dict]:
    persons = generate_world(seed=3, persons=20_000).persons
    rows = persons[["id_number", "name", "phone", "address"]].to_dict("records")
    # A few awkward values: LIKE metacharacters, quotes, ASCII case, spaces, NULLs, short fields.
    extra = [
        {"id_number": "X1", "name": "100%_好", "phone": None, "address": 'Room "7" O\'Brien St'},
        {"id_number": "X2", "name": "1000_好", "phone": "a_b%c", "address": "ROOM 7 o'brien st"},
        {"id_number": "X3", "name": "王", "phone": "", "address": "东湖花园3栋 \\ 2单元"},
        {"id_number": "X4", "name": "欧阳娜娜", "phone": "138 0000 0000", "address": "中 华"},
        {"id_number": "X5", "name": "伟王", "phone": "\U000f0025x", "address": "Ab"},
        {"id_number": "X6", "name": "ΩΩé", "phone": "É3", "address": "好" + SENTINEL},
    ]
    return rows + extra


def _index(engine: sa.Engine, dataset: str, key: list[str], fields: Sequence[str]) -> TextIndex:
    return (PgSearchIndex if engine.dialect.name == "postgresql" else SearchIndex)(dataset, key, fields)


def _filled(url: str, rows: list[dict]) -> tuple[sa.Engine, sa.Table]:
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    snap = _snap(metadata)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(snap), [{**r, "last_changed_run": "r1", "gone_run": None} for r in rows])
    return engine, snap


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, world_rows: list[dict]) -> Iterator[Like]:
    """The keys LIKE finds in an SQLite file of the rows without an index: what every index must answer.
    Each text is asked once, whichever database's index is being tested."""
    engine, snap = _filled(f"sqlite:///{tmp_path_factory.mktemp('like') / 'like.sqlite'}", world_rows)

    @functools.cache
    def like(text: str) -> frozenset[str]:
        cond = sa.or_(*(snap.c[f].contains(text, autoescape=True) for f in FIELDS))
        with engine.connect() as conn:
            return frozenset(conn.execute(sa.select(snap.c.id_number).where(cond)).scalars())

    yield like
    engine.dispose()


@pytest.fixture(scope="module", params=DATABASES)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, world_rows: list[dict]):
    """The rows and their index, on each database (one database per module: building it is the cost)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'snap.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    engine, snap = _filled(url, world_rows)
    index = _index(engine, "people", ["id_number"], FIELDS)
    with engine.begin() as conn:
        index.refresh(conn, snap, "r1")
    yield engine, snap, index
    engine.dispose()


def _literal(engine: sa.Engine, query: sa.Select) -> str:
    return str(query.compile(engine, compile_kwargs={"literal_binds": True}))


def _fts_keys(conn: sa.Connection, index: TextIndex, text: str) -> set | None:
    query = index.keys_matching(text)
    if query is None:
        return None
    keys = list(conn.execute(query).scalars())
    assert len(keys) == len(set(keys)), "a key came back twice"
    return set(keys)


def _queries(rows: list[dict]) -> list[str]:
    people = rows[:20_000]
    picks = people[::997]
    out: list[str] = []
    for r in picks:
        name, idn, phone, addr = r["name"], r["id_number"], r["phone"], r["address"]
        out += [name, name[:2], name[-2:], idn[6:14], idn[-6:].lower(), idn[-1:] + "", phone[-6:], phone[3:7]]
        out += [addr[2:7], addr[-6:], name[-1] + addr[:1]]  # last: spans two fields, must not match via FTS
    out += [
        "王伟",
        "李娜",
        "张伟",
        "王芳",
        "欧阳",
        "司马",
        "诸葛",
        "欧阳娜娜",
        "花园3栋",
        "3栋2单元",
        "1单元101室",
        "东湖",
        "19",
        "199",
        "1990",
        "20",
        "138",
        "0000",
        "8x",
        "x",
        "X",
        "1x",
        "2X",
        "%",
        "_",
        "%_",
        "100%",
        "0%_",
        "0_",
        "a_b",
        "_b%",
        "b%c",
        "\\",
        " \\ ",
        "3栋 \\",
        '"7"',
        "'",
        "o'brien",
        "O'BRIEN",
        "room 7",
        "M 7",
        "ab",
        "AB",
        "中 华",
        " 华",
        "138 0000",
        '"',
        "''",
        '" OR "',
        "a AND b",
        "NEAR(a b)",
        "*",
        "^王",
        "王*",
        "(东湖)",
        "伟王",
        "王伟王",
        "\U000f0025x",
        "%x",
        "ab\U000f0080",
        "不存在的名字",
        "12345678901234567890",
        "囧囧",
        "Ω",
        "ΩΩ",
        "é",
        "É3",
        "ab" + SENTINEL,
        SENTINEL + "x",
        "好" + SENTINEL,
    ]
    return out


def test_supported_only_on_sqlite_with_fts5(tmp_path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'probe.sqlite'}")
    assert search_supported(engine)
    with engine.connect() as conn:
        assert search_supported(conn)
    pg = sa.create_mock_engine("postgresql://", executor=lambda *a, **k: None)  # dialect alone decides
    assert not search_supported(pg)
    engine.dispose()


def test_same_keys_as_like(db, reference: Like, world_rows: list[dict]) -> None:
    engine, _, index = db
    sqlite = engine.dialect.name == "sqlite"
    answered = 0
    with engine.connect() as conn:
        for text in _queries(world_rows):
            got = _fts_keys(conn, index, text)
            if sqlite and len(text) < 2:
                assert got is None, text
                continue
            if got is None:  # SQLite's index declines only texts holding its sentinel character
                assert sqlite and SENTINEL in text, text
                continue
            answered += 1
            assert got == reference(text), text
    assert answered > 150


def test_query_kinds_find_something(db, reference: Like, world_rows: list[dict]) -> None:
    engine, _, index = db
    r = world_rows[123]
    with engine.connect() as conn:
        for text in [r["name"][:2], r["id_number"][6:14], r["phone"][-6:], "100%", "a_b", "o'brien", "欧阳"]:
            assert _fts_keys(conn, index, text), text
        assert _fts_keys(conn, index, "100%") == {"X1"}
        assert _fts_keys(conn, index, "0_") == {"X2"}
        assert _fts_keys(conn, index, "o'brien") == {"X1", "X2"}
        assert _fts_keys(conn, index, "王伟王") == set()  # '伟王' is a name, '王' sits in another row
        if engine.dialect.name == "sqlite":
            assert _fts_keys(conn, index, "x") is None and _fts_keys(conn, index, "") is None
            return
        # PostgreSQL's index answers one character too (a scan), and the GIN index serves the rest.
        assert _fts_keys(conn, index, "x") == reference("x")
        assert _fts_keys(conn, index, "\x00") == set()
        for text in ("欧阳", "王伟", r["id_number"][6:14]):
            plan = conn.execute(sa.text("EXPLAIN " + _literal(engine, index.keys_matching(text)))).scalars()
            assert "search_people_grams" in "\n".join(plan), text


def test_refresh_reindexes_only_the_run(database_url: str, world_rows: list[dict]) -> None:
    engine = sa.create_engine(database_url)
    metadata = sa.MetaData()
    snap = _snap(metadata)
    metadata.create_all(engine)
    index = _index(engine, "people", ["id_number"], FIELDS)
    rows = world_rows[:3000]
    with engine.begin() as conn:
        index.ensure(conn)
        index.ensure(conn)  # idempotent
        conn.execute(sa.insert(snap), [{**r, "last_changed_run": "r1", "gone_run": None} for r in rows])
        index.refresh(conn, snap, "r1")

    changed, untouched, stale = rows[10], rows[20], rows[30]
    with engine.begin() as conn:
        conn.execute(
            sa.update(snap)
            .where(snap.c.id_number == changed["id_number"])
            .values(name="赵钱孙", address="新城花园99栋", phone=None, last_changed_run="r2")
        )
        # Changed without r2's run id: refresh("r2") must leave its index entries alone.
        conn.execute(
            sa.update(snap)
            .where(snap.c.id_number == stale["id_number"])
            .values(name="周吴郑", last_changed_run="r0")
        )
        conn.execute(
            sa.insert(snap),
            [
                {
                    "id_number": "N1",
                    "name": "冯陈褚",
                    "phone": "19900001111",
                    "address": "新城花园99栋",
                    "last_changed_run": "r2",
                    "gone_run": None,
                }
            ],
        )
        index.refresh(conn, snap, "r2")
        index.refresh(conn, snap, "r2")  # re-running the same run is harmless

    with engine.connect() as conn:
        assert _fts_keys(conn, index, "赵钱孙") == {changed["id_number"]}
        assert _fts_keys(conn, index, "新城花园99栋") == {changed["id_number"], "N1"}
        assert changed["id_number"] not in _fts_keys(conn, index, changed["name"])
        assert changed["id_number"] not in (_fts_keys(conn, index, changed["phone"][-6:]) or set())
        # the ID number itself did not change and is still found
        assert _fts_keys(conn, index, changed["id_number"][-8:]) >= {changed["id_number"]}
        assert untouched["id_number"] in _fts_keys(conn, index, untouched["name"])
        assert untouched["id_number"] in _fts_keys(conn, index, untouched["phone"][-6:])
        assert _fts_keys(conn, index, "周吴郑") == set()  # not re-indexed: not in run r2
        assert stale["id_number"] in _fts_keys(conn, index, stale["name"])
        assert _fts_keys(conn, index, "冯陈褚") == {"N1"}
        doc = "search_people_doc" if engine.dialect.name == "sqlite" else "search_people"
        count = conn.exec_driver_sql(f"SELECT count(*) FROM {doc}").scalar()
        assert count == len(rows) + 1
    engine.dispose()


def test_composite_key_text(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    metadata = sa.MetaData()
    snap = sa.Table(
        "snap_shops",
        metadata,
        sa.Column("grid", sa.Text, primary_key=True),
        sa.Column("no", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("last_changed_run", sa.Text, nullable=False),
        sa.Column("gone_run", sa.Text),
    )
    metadata.create_all(engine)
    index = _index(engine, "shops", ["grid", "no"], ["name"])
    with engine.begin() as conn:
        conn.execute(
            sa.insert(snap),
            [
                {"grid": "g1", "no": 7, "name": "老王面馆", "last_changed_run": "r1"},
                {"grid": "g2", "no": 7, "name": "王记", "last_changed_run": "r1"},
            ],
        )
        index.refresh(conn, snap, "r1")
    with engine.connect() as conn:
        assert set(conn.execute(index.keys_matching("王面")).scalars()) == {"g1|7"}
        assert set(conn.execute(index.keys_matching("王记")).scalars()) == {"g2|7"}
        if engine.dialect.name == "sqlite":
            assert index.keys_matching("记") is None
        else:
            assert set(conn.execute(index.keys_matching("记")).scalars()) == {"g2|7"}
    engine.dispose()
