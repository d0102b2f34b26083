"""`harvest check`: a pre-flight that logs in and reads the first pages as a run would, shows them
masked under their Chinese titles, sets them against the stated total, and publishes nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from cli import app
from robots._check import findings
from robots.runtime import Trial, discover, expected_beside
from robots.testing import assert_records, replay
from sandbox import Sandbox
from settings import Settings, load_settings
from store import Store, record_spec
from vault import Vault

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # every column of the widest record on one line, titles unwrapped
SHOWN_WHOLE_ROLES = ("id_number", "phone", "id_derived")  # never in full on a terminal


def check(*args: str) -> Result:
    return runner.invoke(app, ["check", *args], env=WIDE)


def assert_nothing_stored(store: Store) -> None:
    """No run row, no staged row, no snapshot row: a check leaves the database as it found it."""
    with store.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            if table in ("run", "datasetinfo") or table.startswith(("snap_", "stage_")):
                assert conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar() == 0, table


@pytest.mark.browser
@pytest.mark.parametrize(
    ("robot", "states_total"),
    [
        ("persons", True),  # population: numbered pages under a counting pager
        ("elderly", True),  # civil: a JSON API
        ("entities", False),  # market: one .xlsx export
        ("family_doctor", True),  # health: pages numbered from 0
        ("assistance", True),  # assist: a layui JSON API
        ("disabled", True),  # disability: an ASP.NET list paged by postback
    ],
)
def test_check_then_record_and_replay_on_every_shape_and_nothing_is_stored(
    robot: str,
    states_total: bool,
    settings: Settings,
    vault: Vault,
    store: Store,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    """The authoring steps on each sandbox shape: a check shows the first pages masked under their
    titles; a recording of the whole walk replays offline to exactly what the account sees."""
    spec = discover()[robot]
    system = sandbox[spec.system.name]
    truth = system.truth(spec.dataset, system.account("donghu").username)

    result = check(robot, "--account", "donghu", "--sample", "5")

    assert result.exit_code == 0, result.output
    out = result.output
    for column in record_spec(spec.record).columns:
        assert column.label in out, column.label
    assert "已脱敏" in out and f"结论：可以运行：`harvest run {robot} --account donghu`" in out
    for column in record_spec(spec.record).columns:
        if column.role in SHOWN_WHOLE_ROLES and column.name in truth.columns:
            whole = [str(v) for v in truth[column.name].dropna() if len(str(v)) >= 7]
            assert whole and not [v for v in whole if v in out], column.name
    total = f"系统显示共 {len(truth):,} 条" if states_total else "系统没有显示记录总数"
    assert total in out, out
    assert_nothing_stored(store)

    cassette = tmp_path / f"{robot}.cassette"
    recorded = runner.invoke(app, ["record", robot, "--account", "donghu", "--out", str(cassette)])
    assert recorded.exit_code == 0, recorded.output
    assert_nothing_stored(store)
    replayed = replay(robot, cassette)
    assert len(replayed.records) == len(truth)
    assert_records(replayed, expected_beside(cassette))  # what the recording read, read again offline


@pytest.mark.browser
def test_a_check_that_reads_the_whole_list_still_publishes_nothing(
    settings: Settings, vault: Vault, store: Store, sandbox: Sandbox
) -> None:
    population = sandbox["population"]
    truth = population.truth("persons", population.account("xiyuan").username)

    result = check("persons", "--account", "xiyuan", "--pages", "0", "--sample", "3")

    assert result.exit_code == 0, result.output
    assert f"系统显示共 {len(truth):,} 条；已读完整个列表：" in result.output
    assert f"页 {len(truth):,} 条，与总数相符" in result.output  # pages: with the one confirming the end
    assert_nothing_stored(store)


@pytest.mark.browser
def test_a_check_of_a_changed_layout_exits_as_the_run_would_in_one_line(
    settings: Settings, vault: Vault, store: Store, sandbox: Sandbox
) -> None:
    sandbox["population"].switches.layout_changed = True

    result = check("persons", "--account", "donghu")

    assert result.exit_code == 5, result.output
    said = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith("layout_changed："), result.stderr
    assert "现场证据：" in said[0]
    assert_nothing_stored(store)


@pytest.mark.browser
def test_a_check_with_a_wrong_password_parks_the_account_and_then_does_not_log_in(
    settings: Settings, vault: Vault, store: Store, sandbox: Sandbox
) -> None:
    population = sandbox["population"]
    username = population.account("nanshan").username
    vault.set("population", "nanshan", password="not-the-password")

    first = check("persons", "--account", "nanshan")
    second = check("persons", "--account", "nanshan")

    assert first.exit_code == second.exit_code == 3, first.output
    assert "bad_credentials：" in first.stderr
    assert "harvest vault set population nanshan --password" in first.stderr
    assert "本次没有尝试登录" in second.stderr
    assert vault.get("population", "nanshan").status == "parked"
    assert population.gate.wrong_passwords(username) == 1  # the second check did not try
    assert_nothing_stored(store)


def test_the_stated_total_is_set_against_the_pages_read_and_the_page_limit() -> None:
    spec, settings = discover()["persons"], load_settings()
    records = [spec.record.model_construct() for _ in range(200)]
    trial = Trial(*("persons", "population", "donghu", "persons", "donghu", "ok"), records=records, pages=2)
    trial = dataclasses.replace(trial, expected=5_000, first_page=100)

    (line,) = findings(spec, trial, settings.model_copy(update={"max_pages": 50}))
    assert line == "系统显示共 5,000 条；已读 2 页 200 条，按每页 100 条约需 50 页，与总数相符"

    over = findings(spec, trial, settings.model_copy(update={"max_pages": 40}))
    assert "约需 50 页，超过每个列表的页数上限 40 页" in over[1] and "HARVEST_MAX_PAGES" in over[1]
