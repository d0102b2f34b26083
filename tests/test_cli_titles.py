"""`harvest query` and `harvest person` head their columns as staff read them: the fields' titles."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from sandbox import World
from settings import load_settings
from store import Field, Record, Store, make_engine
from tests.store_helpers import harvest

runner = CliRunner(env={"COLUMNS": "250"})


class Resident(Record):
    id_number: str = Field(key=True, role="id_number", title="身份证号")
    name: str = Field(role="name", title="姓名")
    household_no: str = Field(role="household")  # no title: headed by its name


class Visit(Record):
    visit_no: str = Field(key=True, title="随访编号")
    id_number: str = Field(role="id_number", title="身份证号")


@pytest.fixture
def residents(world: World) -> pd.DataFrame:
    """Residents and their visits, harvested into the test's snapshot by the store itself."""
    store = Store(make_engine(load_settings().resolved_database_url))
    rows = world.persons[world.persons["community"] == "donghu"].head(5)
    harvest(store, rows.to_dict(orient="records"), model=Resident, dataset="zz_residents")
    visits = [{"visit_no": f"V{i}", "id_number": n} for i, n in enumerate(rows["id_number"])]
    harvest(store, visits, model=Visit, dataset="zz_visits")
    return rows


def _headed_in_chinese(output: str, *titles: str) -> None:
    for title in (*titles, "社区", "数据标记"):  # the snapshot's own columns too
        assert title in output, output
    for name in ("id_number", "name", "scope", "flags"):
        assert f" {name} " not in output, output


def test_query_heads_each_column_with_its_fields_title(residents: pd.DataFrame) -> None:
    shown = runner.invoke(app, ["query", "zz_residents"])
    assert shown.exit_code == 0, shown.output
    _headed_in_chinese(shown.output, "身份证号", "姓名")
    assert "household_no" in shown.output  # a field without a title keeps its name


def test_person_heads_every_datasets_columns_with_their_titles(residents: pd.DataFrame) -> None:
    shown = runner.invoke(app, ["person", residents.iloc[0]["id_number"]])
    assert shown.exit_code == 0, shown.output
    assert "zz_residents" in shown.output and "zz_visits" in shown.output
    _headed_in_chinese(shown.output, "身份证号", "姓名", "随访编号")
