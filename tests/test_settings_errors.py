"""A setting that cannot work is one Chinese line naming it and the fix, exit 2, from the real command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors import configured
from connectors.sandbox import population
from settings import ConfigurationError, Settings, load_settings
from store import Store, make_engine

HARVEST = Path(sys.executable).with_name("harvest")

# (setting, value, command, words the line must hold): each command reads its settings its own way.
MALFORMED = [
    ("HARVEST_DESK_PORT", "abc", "list", ["不是整数", "8700"]),
    ("HARVEST_DESK_PORT", "70000", "desk users", ["65535"]),
    ("HARVEST_TIMEZONE", "Mars/Olympus", "status", ["Mars/Olympus", "Asia/Shanghai"]),
    ("HARVEST_SYSTEM_URLS", "{bad", "list", ["JSON", '{"population"']),
    ("HARVEST_SYSTEM_URLS", '{"market": "not a url"}', "run entities --all", ["market", "http"]),
    ("HARVEST_SYSTEM_URLS", '["http://127.0.0.1:8080"]', "schedule --list", ["JSON 对象"]),
    ("HARVEST_DATABASE_URL", "garbage://x", "runs", ["garbage://x", "sqlite:///"]),
    ("HARVEST_DATABASE_URL", "no url at all", "freshness", ["数据库网址"]),
    ("HARVEST_HEADLESS", "maybe", "vault list", ["true 或 false"]),
    ("HARVEST_SANDBOX_PORT", "eighty", "sandbox --accounts", ["不是整数", "8701"]),
    ("HARVEST_MAX_PAGES", "0", "list", ["不小于 1"]),
    ("HARVEST_RETRY_BASE_S", "soon", "status", ["不是数字"]),
    ("HARVEST_DESK_SESSION_HOURS", "-1", "serve", ["大于 0"]),
    ("HARVEST_RETENTION_DAYS", "0", "purge", ["不小于 1"]),
    ("HARVEST_SCHEDULES", '{"persons": 3', "schedule --list", ["JSON"]),
    ("HARVEST_DESK_TRUSTED_PROXIES", '["proxy.local"]', "serve", ["proxy.local", "IP"]),
    ("HARVEST_ALERT_WEBHOOK_URL", "ftp://127.0.0.1/alerts", "list", ["http(s)"]),
    ("HARVEST_LOG_JSON", "sometimes", "runs", ["true 或 false"]),
]


def _harvest(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HARVEST), *command.split()],
        env={**os.environ, "COLUMNS": "80", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    line = result.stderr.strip()
    assert line and "\n" not in line and "Traceback" not in result.stderr + result.stdout, result.stderr
    for word in words:
        assert word in line, line
    return line


@pytest.mark.parametrize(("name", "value", "command", "words"), MALFORMED)
def test_a_malformed_setting_is_one_line_that_names_it_and_exit_2(
    name: str, value: str, command: str, words: list[str], tmp_path: Path
) -> None:
    result = _harvest(command, {name: value}, tmp_path)
    _one_line(result, name, "设置", *words)
    assert "Error" not in result.stderr  # no English exception name, no pydantic wording


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("HARVEST_ALERT_DINGTALK_URL", "robot/send?access_token=tok3n-4711", "tok3n-4711"),
        ("HARVEST_ALERT_WECOM_URL", "127.0.0.1/webhook/send?key=k3y-0815", "k3y-0815"),
        ("HARVEST_SYSTEM_URLS", '{"civil": "127.0.0.1:1/?token=t0ken-99"}', "t0ken-99"),
        ("HARVEST_DATABASE_URL", "garbage://harvest:pa55-w0rd@127.0.0.1/db", "pa55-w0rd"),
    ],
)
def test_a_malformed_url_never_shows_its_token_or_password(
    name: str, value: str, secret: str, tmp_path: Path
) -> None:
    line = _one_line(_harvest("list", {name: value}, tmp_path), name)
    assert secret not in line


def test_a_secret_setting_that_does_not_validate_is_not_shown() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(vault_key=24681357)
    assert "HARVEST_VAULT_KEY" in str(caught.value) and "24681357" not in str(caught.value)


def test_a_database_that_is_a_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {"HARVEST_DATA_DIR": str(tmp_path / "data"), "HARVEST_DATABASE_URL": f"sqlite:///{tmp_path}"}
    for command in ("runs", "freshness", "schedule --list"):
        _one_line(_harvest(command, env, tmp_path), str(tmp_path), "HARVEST_DATABASE_URL")


def test_a_data_dir_under_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    env = {"HARVEST_DATA_DIR": str(tmp_path / "plain-file" / "data")}
    _one_line(_harvest("schedule --list", env, tmp_path), "plain-file", "HARVEST_DATA_DIR")


def test_a_read_only_database_names_the_file_and_the_fix(tmp_path: Path) -> None:
    # SQLite's read-only mode: the same refusal a file without write permission gives, and one that
    # holds for root too (the suite may run as root, which file modes do not stop).
    db = tmp_path / "data" / "harvest.db"
    Store(make_engine(f"sqlite:///{db}"))
    env = {
        "HARVEST_DATA_DIR": str(db.parent),
        "HARVEST_DATABASE_URL": f"sqlite:///file:{db}?mode=ro&uri=true",
    }
    line = _one_line(_harvest("schedule --list", env, tmp_path), str(db), "只读", "HARVEST_DATABASE_URL")
    assert "chmod" in line


def test_help_still_works_beside_a_malformed_setting(tmp_path: Path) -> None:
    result = _harvest("list --help", {"HARVEST_DESK_PORT": "abc"}, tmp_path)
    assert result.returncode == 0 and "harvest list" in result.stdout


def test_politeness_is_set_per_system_over_the_declaration() -> None:
    settings = Settings(politeness={"population": {"rate": 2.5, "hours": [22, 6]}})
    system = configured(population, settings)
    assert (system.politeness.rate, system.politeness.hours) == (2.5, (22, 6))
    assert system.politeness.concurrency == population.politeness.concurrency  # not given: as declared
    assert configured(population, Settings()) is population


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('{"population": {"rat": 5}}', "HARVEST_POLITENESS"),
        ('{"population": {"rate": 0}}', "应大于 0"),
        ('{"population": {"hours": [22, 25]}}', "应不大于 23"),
    ],
)
def test_a_wrong_politeness_is_one_line_naming_the_setting(
    value: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARVEST_POLITENESS", value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert said in str(raised.value) and "\n" not in str(raised.value)
