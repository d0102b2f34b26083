"""Drift ends a run ``layout_changed`` with evidence saved, and the snapshot exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sandbox import population
from robots import Walk, robot
from robots.sandbox_population import Person
from sandbox import Sandbox
from settings import Settings
from store import Store, record_spec
from tests.runtime_helpers import harvest, snapshot
from vault import Vault

pytestmark = pytest.mark.browser

# The demo record's own mapping, spelled out so that one test can swap two of its columns.
PERSON_COLUMNS = {c.label: c.name for c in record_spec(Person).columns if c.role != "community"}


@pytest.mark.parametrize(
    ("system", "robot_name", "evidence"),
    [
        ("population", "persons", "last-page.html"),
        ("civil", "elderly", "last-page.json"),
        ("market", "entities", ""),
    ],
)
def test_a_changed_layout_ends_the_run_with_evidence_and_the_snapshot_untouched(
    system: str,
    robot_name: str,
    evidence: str,
    settings: Settings,
    store: Store,
    vault: Vault,
    sandbox: Sandbox,
) -> None:
    (good,) = harvest(settings, store, vault, [(robot_name, "donghu")])
    assert good.status == "ok"
    dataset = good.dataset
    before = snapshot(store, dataset)
    sandbox[system].switches.layout_changed = True

    (report,) = harvest(settings, store, vault, [(robot_name, "donghu")])

    assert (report.status, report.kind, report.exit_code) == ("failed", "layout_changed", 5)
    assert "布局可能已变化" in report.message
    run = store.run(report.run_id or "")
    assert (run.failure_kind, run.artifacts) == ("layout_changed", report.artifacts)
    folder = Path(report.artifacts or "")
    assert (folder / "screenshot.png").read_bytes().startswith(b"\x89PNG")
    if evidence:
        assert (folder / evidence).stat().st_size > 0
    assert snapshot(store, dataset).equals(before)


@robot(system=population, record=Person, dataset="persons", name="t_bad_dates")
async def bad_dates(walk: Walk):
    """Reads the 出生日期 column into the phone field and vice versa: most rows fail validation."""
    async for page in walk.pages("/persons?size=100&page={n}"):
        for row in page.table(
            "table.persons", columns={**PERSON_COLUMNS, "手机号": "birth_date", "出生日期": "phone"}
        ):
            yield row | {"community": walk.scope}


def test_rows_that_fail_validation_beyond_the_tolerance_are_drift(
    settings: Settings, store: Store, vault: Vault
) -> None:
    (report,) = harvest(settings, store, vault, [("t_bad_dates", "xiyuan")])
    assert (report.status, report.kind) == ("failed", "layout_changed")
    assert "不符合 Person" in report.message and "birth_date" in report.message
    assert snapshot(store, "persons").empty


@robot(system=population, record=Person, dataset="persons", name="t_half")
async def half(walk: Walk):
    """Sees a filtered list (the system states the filtered total): as if a filter had been left set."""
    async for page in walk.pages("/persons?size=50&tag=独居老人&page={n}", last=".pagination a"):
        for row in page.table("table.persons", Person):
            yield row | {"community": walk.scope}


@robot(system=population, record=Person, dataset="persons", name="t_first_page")
async def first_page(walk: Walk):
    """Reads the first page only, as a robot with a pager it does not follow would."""
    async for page in walk.pages("/persons?size=50&page={n}"):
        for row in page.table("table.persons", Person):
            yield row | {"community": walk.scope}
        return


def test_fewer_records_than_the_pages_state_publish_nothing_on_a_first_run(
    settings: Settings, store: Store, vault: Vault
) -> None:
    (short,) = harvest(settings, store, vault, [("t_first_page", "nanshan")])
    assert (short.status, short.kind, short.exit_code) == ("failed", "layout_changed", 5)
    assert "系统显示列表共有" in short.message and "读到 50 条" in short.message
    assert snapshot(store, "persons").empty


def test_far_fewer_records_than_the_last_good_run_publish_nothing(
    settings: Settings, store: Store, vault: Vault
) -> None:
    good, shrunk = harvest(settings, store, vault, [("persons", "nanshan"), ("t_half", "nanshan")])
    assert good.status == "ok"
    assert (shrunk.status, shrunk.kind, shrunk.exit_code) == ("failed", "layout_changed", 5)
    assert "上次成功的运行看到" in shrunk.message
    assert (snapshot(store, "persons")["gone_run"].isna()).all()


@robot(system=population, record=Person, dataset="persons", name="t_buggy")
async def buggy(walk: Walk):
    """A robot with a bug halfway through its walk."""
    async for page in walk.pages("/persons?size=100&page={n}"):
        for row in page.table("table.persons", Person):
            yield row | {"community": walk.scope}
        raise ZeroDivisionError("a bug in the robot")


def test_a_robot_that_raises_fails_alone_with_its_traceback_kept(
    settings: Settings, store: Store, vault: Vault
) -> None:
    (good,) = harvest(settings, store, vault, [("persons", "donghu")])
    before = snapshot(store, "persons")
    (broken,) = harvest(settings, store, vault, [("t_buggy", "donghu")])
    assert (broken.status, broken.kind, broken.exit_code) == ("failed", "error", 1)
    assert "ZeroDivisionError: a bug in the robot" in broken.message
    assert "raise ZeroDivisionError" in (Path(broken.artifacts or "") / "traceback.txt").read_text()
    assert snapshot(store, "persons").equals(before) and good.status == "ok"


@robot(system=population, record=Person, dataset="persons", name="t_reads_nothing")
async def reads_nothing(walk: Walk):
    """Walks every page and yields nothing, as a robot whose table reading matches no row would."""
    async for page in walk.pages("/persons?size=100&page={n}", last=".pagination a"):
        page.table("table.persons", Person)
    return
    yield


@robot(system=population, record=Person, dataset="persons", name="t_nobody")
async def nobody(walk: Walk):
    """A search that finds nobody: the system shows its 暂无数据 row."""
    async for page in walk.pages("/persons?size=100&name=查无此人&page={n}", last=".pagination a"):
        for row in page.table("table.persons", Person):
            yield row | {"community": walk.scope}


def test_a_first_run_that_reads_pages_but_no_records_publishes_nothing(
    settings: Settings, store: Store, vault: Vault
) -> None:
    (empty,) = harvest(settings, store, vault, [("t_reads_nothing", "donghu")])
    assert (empty.status, empty.kind) == ("failed", "layout_changed"), empty.message
    assert "没有找到任何记录" in empty.message and empty.pages >= 3


def test_a_list_the_system_says_is_empty_is_an_ok_run_of_no_records(
    settings: Settings, store: Store, vault: Vault
) -> None:
    (empty,) = harvest(settings, store, vault, [("t_nobody", "donghu")])
    assert (empty.status, empty.records) == ("ok", 0), empty.message
