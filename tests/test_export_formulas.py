"""Exports a spreadsheet opens as data: hostile harvested text never becomes a formula, in the CLI's
.csv and .xlsx and in the desk's .xlsx, and a CLI export is readable by its owner only."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli import app
from desk import create_app
from settings import load_settings
from store import Store, make_engine
from store._export import MAX_WIDTH, ExportNote, write_export
from tests.desk_helpers import HOSTILE, PASSWORD, Company, companies
from tests.store_helpers import harvest

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture
def harvested() -> Store:
    store = Store(make_engine(load_settings().resolved_database_url))
    harvest(store, companies(), model=Company, dataset="companies", scope="donghu")
    return store


def assert_xlsx_holds_text_not_formulas(content: bytes) -> None:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    cells = [cell for row in sheet.iter_rows(min_row=5) for cell in row]  # under three notes and the header
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    text = [c.value for c in cells if c.data_type == "s"]
    assert all(text.count(value) == 2 for value in HOSTILE)  # name and address, each value as it was
    numbers = [c.value for c in cells if c.data_type == "n"]
    assert numbers.count(-1200.5) == len(HOSTILE) and 3 in numbers  # numbers stay numbers
    header = [c.value for c in sheet[4]]
    assert header.count("社区") == 1  # no community field: the provenance says it
    name = sheet.cell(row=4, column=header.index("企业名称") + 1).column_letter
    assert sheet.column_dimensions[name].width == MAX_WIDTH  # a long =HYPERLINK(…) is cut on screen only


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_the_cli_export_writes_hostile_text_as_text_readable_by_its_owner_only(
    harvested: Store, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"企业{suffix}"
    result = runner.invoke(app, ["query", "companies", "--export", str(target)])
    assert result.exit_code == 0, result.output
    assert target.stat().st_mode & 0o777 == 0o600
    if suffix == ".xlsx":
        assert_xlsx_holds_text_not_formulas(target.read_bytes())
        return
    assert "数据更新于" in result.output  # said beside the file: a .csv is data only, header first
    assert list(pd.read_csv(target, dtype=str).columns[:2]) == ["统一社会信用代码", "企业名称"]
    table = list(csv.DictReader(target.read_text("utf-8-sig").splitlines()))
    by_code = {row["统一社会信用代码"]: row for row in table}
    for n, text in enumerate(HOSTILE):
        row = by_code[f"91330102MA{n:08d}"]
        assert row["企业名称"] == row["经营场所"] == "'" + text  # OWASP's leading apostrophe
        assert float(row["注册资本"]) == -1200.5 and row["从业人数"] == str(n)  # numbers untouched
    assert by_code["91330102MA99999999"]["企业名称"] == "东湖商行"  # harmless text as it was


def test_an_existing_export_file_others_could_read_is_made_private(harvested: Store, tmp_path: Path) -> None:
    target = tmp_path / "企业.csv"
    target.write_text("old")
    target.chmod(0o644)
    assert runner.invoke(app, ["query", "companies", "--export", str(target)]).exit_code == 0
    assert target.stat().st_mode & 0o777 == 0o600 and "东湖商行" in target.read_text("utf-8-sig")


def test_the_desk_export_holds_no_formula_cell(harvested: Store) -> None:
    desk = create_app(load_settings())
    desk.state.desk.staff.add("clerk", PASSWORD, role="staff", scope="donghu")
    browser = TestClient(desk, follow_redirects=False)
    form = browser.get("/login").text
    csrf = re.findall(r'name="csrf" value="([^"]+)"', form)[0]
    assert (
        browser.post("/login", data={"name": "clerk", "password": PASSWORD, "csrf": csrf}).status_code == 303
    )
    page = browser.get("/datasets/companies").text
    csrf = re.findall(r'name="csrf" value="([^"]+)"', page)[0]
    exported = browser.post("/datasets/companies/export", data={"csrf": csrf})
    assert exported.status_code == 200, exported.text
    assert_xlsx_holds_text_not_formulas(exported.content)


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_a_tab_or_carriage_return_before_a_formula_is_text_too(tmp_path: Path, suffix: str) -> None:
    # The store trims harvested text, so these reach a file only from a frame written directly.
    frame = pd.DataFrame({"备注": ["\t=1+1", "\r=1+1", "正常", None], "数量": [-1, 2, 3, 4]})
    note = ExportNote(harvested_at=None, filters="", by="测试", at=dt.datetime.now(dt.UTC))
    path = write_export(frame, tmp_path / f"备注{suffix}", sheet="备注", note=note)
    if suffix == ".xlsx":
        sheet = openpyxl.load_workbook(path).active
        assert sheet is not None
        assert sheet.cell(row=2, column=1).value == "筛选条件：全部记录"
        notes = [sheet.cell(row=r, column=1) for r in range(5, 8)]
        assert [c.data_type for c in notes] == ["s"] * 3
        # XML reads a carriage return back as a line feed; the formula after it stays text.
        assert [c.value for c in notes] == ["\t=1+1", "\n=1+1", "正常"]
        assert [c.quotePrefix for c in notes] == [True, True, False]  # Excel keeps them text when edited
        assert [sheet.cell(row=r, column=2).value for r in range(5, 9)] == [-1, 2, 3, 4]
        return
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))
    assert rows[0] == ["备注", "数量"]
    assert rows[1:] == [["'\t=1+1", "-1"], ["'\r=1+1", "2"], ["正常", "3"], ["", "4"]]
