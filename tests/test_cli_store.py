"""`harvest runs / query / person / freshness` over a real snapshot in the test's data dir."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from machine import local_time
from sandbox import World
from settings import load_settings
from store import Store, make_engine
from tests.store_helpers import begin, harvest
from tests.test_store_snapshot import Person
from vault import Vault

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture
def harvested(world: World) -> pd.DataFrame:
    store = Store(make_engine(load_settings().resolved_database_url))
    rows = world.persons[world.persons["community"] == "donghu"]
    harvest(store, rows.to_dict(orient="records"), model=Person, dataset="persons")
    return rows


def test_without_a_snapshot_the_commands_say_what_to_do() -> None:
    result = runner.invoke(app, ["freshness"])
    assert result.exit_code == 1 and "make demo" in result.output


def test_query_prints_masked_rows_and_reveals_only_with_a_reason(harvested: pd.DataFrame) -> None:
    someone = harvested.iloc[0]
    masked = runner.invoke(app, ["query", "persons", "--where", f"id_number={someone['id_number']}"])
    assert masked.exit_code == 0, masked.output
    assert someone["id_number"] not in masked.output and someone["id_number"][:6] in masked.output
    refused = runner.invoke(app, ["query", "persons", "--reveal"])
    assert refused.exit_code == 2 and "--reason" in refused.output
    revealed = runner.invoke(
        app, ["query", "persons", "--search", someone["id_number"], "--reveal", "--reason", "核对户籍"]
    )
    assert revealed.exit_code == 0 and someone["id_number"] in revealed.output


def test_query_exports_a_masked_xlsx(harvested: pd.DataFrame, tmp_path: Path) -> None:
    target = tmp_path / "名单.xlsx"
    result = runner.invoke(app, ["query", "persons", "--export", str(target)])
    assert result.exit_code == 0 and "已脱敏" in result.output and "；数据更新于 " in result.output
    sheet = pd.read_excel(target, skiprows=3, dtype=str)  # under three lines of notes
    assert len(sheet) == len(harvested) and not sheet["身份证号"].isin(harvested["id_number"]).any()


def test_unknown_dataset_and_field_are_usage_errors(harvested: pd.DataFrame) -> None:
    assert runner.invoke(app, ["query", "nope"]).exit_code == 2
    result = runner.invoke(app, ["query", "persons", "--where", "colour=red"])
    assert result.exit_code == 2 and "没有字段 'colour'" in result.output


def test_person_runs_and_freshness_show_the_harvest(harvested: pd.DataFrame) -> None:
    person = runner.invoke(app, ["person", harvested.iloc[1]["id_number"]])
    assert person.exit_code == 0 and "persons" in person.output
    runs = runner.invoke(app, ["runs"])
    assert runs.exit_code == 0 and "ok" in runs.output and str(len(harvested)) in runs.output
    fresh = runner.invoke(app, ["freshness"])
    assert fresh.exit_code == 0 and "persons" in fresh.output and "从未成功" not in fresh.output


def test_purge_needs_a_retention_period_and_reports_what_it_deleted(harvested: pd.DataFrame) -> None:
    refused = runner.invoke(app, ["purge"])
    assert refused.exit_code == 2 and "HARVEST_RETENTION_DAYS" in refused.output
    done = runner.invoke(app, ["purge", "--days", "30", "--as", "管理员"])
    assert done.exit_code == 0 and "已清理" in done.output and "persons 0 条" in done.output


def test_runs_shows_a_message_as_written_and_the_time_in_beijing_time(harvested: pd.DataFrame) -> None:
    store = Store(make_engine(load_settings().resolved_database_url))
    run_id = begin(store, model=Person, dataset="persons")
    message = 'after login, a[href="/logout/"] is not on /admin/ [bold]'
    store.fail(run_id, "layout_changed", message)
    started = store.run(run_id).started_at
    shown = runner.invoke(app, ["runs"])
    assert shown.exit_code == 0, shown.output
    assert message in shown.output  # rich would read a[href=…] and [bold] as markup and drop them
    assert "开始（北京时间）" in shown.output and f"{local_time(started):%m-%d %H:%M}" in shown.output
    fresh = runner.invoke(app, ["freshness"])
    assert "最近成功采集（北京时间）" in fresh.output


def test_status_times_are_beijing_time_and_its_json_keeps_the_offset(
    harvested: pd.DataFrame, vault: Vault
) -> None:
    rows = {row["dataset"]: row for row in json.loads(runner.invoke(app, ["status", "--json"]).stdout)}
    assert rows["persons"]["last_good"].endswith("+08:00") and rows["persons"]["next_run"].endswith("+08:00")
    shown = runner.invoke(app, ["status"])
    assert shown.exit_code == 0 and "下次运行（北京时间）" in shown.output
    last_good = dt.datetime.fromisoformat(rows["persons"]["last_good"])
    assert f"{last_good:%m-%d %H:%M}" in shown.output


def test_status_warns_when_others_can_read_the_data_dir(harvested: pd.DataFrame, vault: Vault) -> None:
    data_dir = load_settings().data_dir
    quiet = runner.invoke(app, ["status"])
    assert quiet.exit_code == 0 and "其他用户可以读取" not in quiet.stderr
    # The database is tightened whenever it is opened; a file copied in by hand is not.
    copied = data_dir / "runs" / "by-hand" / "last-page.html"
    copied.parent.mkdir(parents=True)
    copied.write_text("<td>110101199003071234</td>")
    copied.chmod(0o644)
    warned = runner.invoke(app, ["status"])
    assert warned.exit_code == 0, warned.output
    assert "last-page.html" in warned.stderr and f"chmod -R go-rwx {data_dir}" in warned.stderr
