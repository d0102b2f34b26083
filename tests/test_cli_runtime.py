"""`harvest list`, `harvest run` and `harvest demo` as an operator meets them."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli import app
from cli._run import _print_reports
from robots.runtime import RichProgress, RunReport
from sandbox import Sandbox
from settings import Settings
from vault import Vault

runner = CliRunner()


def test_run_needs_an_account_or_all_and_a_known_robot(vault: Vault) -> None:
    result = runner.invoke(app, ["run", "persons"])
    assert result.exit_code == 2 and "--account ACCOUNT 或 --all" in result.output
    result = runner.invoke(app, ["run", "nobody", "--all"])
    assert result.exit_code == 2 and "没有机器人 'nobody'" in result.output
    result = runner.invoke(app, ["run", "persons", "--account", "atlantis"])
    assert result.exit_code == 2 and "harvest vault add population" in result.output


def test_a_missing_chromium_is_one_line_naming_the_fix(vault: Vault) -> None:
    # Chromium is started early, beside the robots and the store: its absence still ends the run
    # as one line, with the driver stopped and nothing run.
    missing = {"HARVEST_CHROMIUM": "/nowhere/chromium"}
    result = runner.invoke(app, ["run", "elderly", "--account", "donghu"], env=missing)
    assert result.exit_code == 1, result.output
    assert "找不到 Chromium（/nowhere/chromium）" in result.output and "HARVEST_CHROMIUM" in result.output
    assert "Traceback" not in result.output


def test_run_help_documents_the_exit_codes() -> None:
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())  # Rich wraps and boxes the epilog
    for code in ("0 成功", "2 用法或配置有误", "3 bad_credentials 或 locked", "4 needs_human"):
        assert code in text
    assert "5 layout_changed" in text and "6 system_unavailable" in text


@pytest.mark.browser
def test_run_harvests_and_exits_with_the_failures_code(
    settings: Settings, vault: Vault, sandbox: Sandbox
) -> None:
    ok = runner.invoke(app, ["run", "elderly", "--account", "donghu"])
    assert ok.exit_code == 0, ok.output
    assert "采集结果" in ok.output and "civil/donghu" in ok.output

    vault.set("civil", "xiyuan", password="wrong-password-1")
    bad = runner.invoke(app, ["run", "elderly", "--all"])
    assert bad.exit_code == 3, bad.output
    assert "bad_credentials" in bad.output and "harvest vault set civil xiyuan --password" in bad.output

    listed = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "已停用（bad_credentials）" in listed.output and "elderly" in listed.output


@pytest.mark.browser
def test_demo_runs_every_demo_robot_for_every_demo_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARVEST_SANDBOX_PORT", "0")  # free ports: CI may run beside a live demo
    monkeypatch.setenv("HARVEST_SANDBOX_COMMUNITIES", "2")
    result = runner.invoke(app, ["demo", "--persons", "300"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for dataset in ("persons", "households", "elderly", "entities"):
        for account in ("donghu", "xiyuan"):
            assert any(
                dataset in line and account in line and " ok " in line for line in result.output.splitlines()
            )
    assert "接下来：" in result.output


@pytest.mark.browser
def test_schedule_list_and_status_say_what_runs_when_and_how_fresh(
    settings: Settings, vault: Vault, sandbox: Sandbox
) -> None:
    assert runner.invoke(app, ["run", "elderly", "--account", "donghu"]).exit_code == 0
    listed = runner.invoke(app, ["schedule", "--list"])
    assert listed.exit_code == 0, listed.output
    assert "elderly@civil" in listed.output and "从未运行" in listed.output
    status = runner.invoke(app, ["status", "--json"])
    assert status.exit_code == 0, status.output
    rows = {row["dataset"]: row for row in json.loads(status.stdout)}
    assert set(rows) >= {"persons", "households", "elderly", "entities"}
    assert rows["elderly"]["health"] == "ok" and rows["elderly"]["accounts"] == 3
    assert rows["persons"]["health"] == "stale" and rows["persons"]["last_good"] is None


def test_the_run_summary_and_progress_show_messages_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    message = 'after login, a[href="/logout/"] is not on /admin/'
    report = RunReport(
        robot="admin_pages",
        system="health",
        account="donghu",
        dataset="visits",
        status="failed",
        kind="layout_changed",
        message=message,
    )
    assert _print_reports([report]) == 5
    assert message in capsys.readouterr().err
    drawn = Console(file=io.StringIO(), width=200)
    running = dataclasses.replace(report, account="[staff]", status="running", kind=None)
    with RichProgress(drawn) as progress:
        progress.started("run-1", running)
        progress.finished("run-1", report)
    assert "admin_pages · [staff]" in drawn.file.getvalue()
