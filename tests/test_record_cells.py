"""Cells convert themselves by their record field's type: Chinese dates, amounts, yes/no, "-" for empty."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from store import Field, Record, Store, make_engine, record_spec
from store._cells import PLACEHOLDERS
from tests.store_helpers import harvest

BORN = dt.date(1988, 6, 15)


class Cells(Record):
    code: str = Field(key=True)
    born: dt.date | None = None
    at: dt.datetime | None = None
    count: int | None = None
    amount: Decimal | None = None
    ratio: float | None = None
    flag: bool | None = None
    note: str | None = None


class Required(Record):
    code: str = Field(key=True)
    born: dt.date
    count: int
    amount: Decimal
    flag: bool
    note: str


def cell(field: str, value: Any) -> Any:
    return getattr(Cells.model_validate({"code": "1", field: value}), field)


@pytest.mark.parametrize(
    "text",
    [
        "1988年6月15日",
        "1988年06月15日",
        "1988 年 6 月 15 日",
        "1988/6/15",
        "1988-06-15",
        "1988-6-15",
        "1988-06-15 00:00:00",
        "1988-06-15T00:00:00",
        "1988.6.15",
        "19880615",
        " 1988-06-15 ",
    ],
)
def test_dates_in_the_forms_systems_show(text: str) -> None:
    assert cell("born", text) == BORN


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1988年6月15日 08:30", dt.datetime(1988, 6, 15, 8, 30)),
        ("1988/6/15 8:30:05", dt.datetime(1988, 6, 15, 8, 30, 5)),
        ("1988-06-15T08:30:05", dt.datetime(1988, 6, 15, 8, 30, 5)),
        ("1988-06-15 08:30:05.25", dt.datetime(1988, 6, 15, 8, 30, 5, 250000)),
        ("1988.6.15", dt.datetime(1988, 6, 15)),
        ("19880615", dt.datetime(1988, 6, 15)),
    ],
)
def test_datetimes_are_the_date_forms_with_a_time(text: str, expected: dt.datetime) -> None:
    assert cell("at", text) == expected


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        ("amount", "1,200.50元", Decimal("1200.50")),
        ("amount", "￥1,200.50", Decimal("1200.50")),
        ("amount", "¥ 3，000", Decimal("3000")),
        ("amount", "RMB 0.10", Decimal("0.10")),
        ("amount", "-5", Decimal("-5")),
        ("ratio", "1,200.5 元", 1200.5),
        ("ratio", "-0.25", -0.25),
        ("count", "12人", 12),
        ("count", "3 户", 3),
        ("count", "1,200", 1200),
        ("count", "5次", 5),
        ("count", "-5", -5),
        ("count", "80岁", 80),
    ],
)
def test_numbers_lose_currency_signs_separators_and_count_units(field: str, text: str, expected: Any) -> None:
    value = cell(field, text)
    assert value == expected and type(value) is type(expected)
    if isinstance(expected, Decimal):
        assert str(value) == str(expected)  # exact: the trailing zero of 1200.50 is kept


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("是", True),
        ("否", False),
        ("有", True),
        ("无", False),
        ("Y", True),
        ("n", False),
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
    ],
)
def test_yes_and_no(text: str, expected: bool) -> None:
    assert cell("flag", text) is expected
    assert cell("flag", "-") is None  # "无" is a bool's own word; other placeholders are still None


@pytest.mark.parametrize("field", ["born", "at", "count", "amount", "ratio", "note"])
@pytest.mark.parametrize("text", sorted(PLACEHOLDERS | {"  ", " - "}))
def test_placeholders_are_none_in_optional_fields_of_any_type(field: str, text: str) -> None:
    assert cell(field, text) is None


@pytest.mark.parametrize("text", ["-", "--", "—", "暂无", "", "N/A"])
def test_a_placeholder_in_a_required_field_still_fails(text: str) -> None:
    row = {"code": "1", "born": "1988-06-15", "count": "1", "amount": "1", "flag": "是", "note": "x"}
    for field in ("born", "count", "amount", "flag"):
        with pytest.raises(ValidationError, match=field) as failed:
            Required.model_validate(row | {field: text})
        assert failed.value.errors()[0]["input"] == text  # left alone: the error shows what the page did
    assert Required.model_validate(row).born == BORN


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("born", "1988-13-45"),
        ("born", "1988年2月30日"),
        ("born", "昨天"),
        ("born", "1988-06-15 08:30:00"),  # a time of day is not a date: drift, not a silent cut
        ("at", "1988-06-15 25:00"),
        ("count", "十二"),
        ("count", "12.5人"),
        ("amount", "一千元"),
        ("amount", "1.2.3"),
        ("ratio", "约100"),
        ("flag", "也许"),
    ],
)
def test_text_that_is_not_the_type_still_fails_validation(field: str, text: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Cells.model_validate({"code": "1", field: text})


def test_values_already_typed_pass_untouched_and_the_callers_row_is_not_changed() -> None:
    when = dt.datetime(2020, 1, 2, 3, 4)
    record = Cells.model_validate(
        {"code": "1", "born": BORN, "at": when, "count": 3, "amount": Decimal("1.50"), "flag": False}
    )
    assert (record.born, record.at, record.count, record.amount, record.flag) == (
        BORN,
        when,
        3,
        Decimal("1.50"),
        False,
    )
    row = {"code": "1", "born": "1988年6月15日", "note": "-"}
    Cells.model_validate(row)
    assert row == {"code": "1", "born": "1988年6月15日", "note": "-"}
    assert cell("note", " 张三 ") == "张三"  # a str stays a str, stripped as before


def test_a_record_derived_from_another_converts_the_fields_of_both() -> None:
    before = [len(info.metadata) for info in Cells.model_fields.values()]

    class More(Cells):
        moved: dt.date | None = None

    assert [len(info.metadata) for info in More.model_fields.values()][:-1] == before  # one converter each
    assert [len(info.metadata) for info in Cells.model_fields.values()] == before

    record = More.model_validate({"code": "1", "born": "1988年6月15日", "moved": "2001/2/3", "count": "—"})
    assert (record.born, record.moved, record.count) == (BORN, dt.date(2001, 2, 3), None)


class Payment(Record):
    code: str = Field(key=True)
    amount: Decimal = Field(title="金额")
    refund: Decimal | None = None


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(make_engine(f"sqlite:///{tmp_path / 'harvest.db'}"))


def test_a_decimal_round_trips_exactly_through_the_store(store: Store) -> None:
    assert record_spec(Payment).columns[1].type is Decimal
    rows = [
        {"code": "A", "amount": "1,200.50元", "refund": "-"},
        {"code": "B", "amount": "0.10", "refund": "3.00"},
    ]
    run = harvest(store, rows, model=Payment, dataset="payments")
    assert (run.status, run.new) == ("ok", 2)
    again = harvest(store, rows, model=Payment, dataset="payments")
    assert (again.unchanged, again.changed) == (2, 0)  # the content hash of a Decimal is stable
    changed = harvest(store, [rows[0], rows[1] | {"amount": "0.1"}], model=Payment, dataset="payments")
    assert changed.changed == 1  # 0.10 and 0.1 are the same number, but not what the system showed
    with store.engine.connect() as conn:
        snap = conn.execute(sa.text("SELECT code, amount, refund FROM snap_payments ORDER BY code")).all()
        fields = conn.scalar(sa.text("SELECT fields FROM change WHERE run_id = :r"), {"r": changed.id})
    assert [tuple(r) for r in snap] == [("A", "1200.50", None), ("B", "0.1", "3.00")]
    assert json.loads(fields) == {"amount": ["0.10", "0.1"]}
    back = Payment.model_validate(dict(zip(("code", "amount", "refund"), snap[0], strict=True)))
    assert back.amount == Decimal("1200.50") and str(back.amount) == "1200.50"
