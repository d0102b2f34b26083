"""A robot file that does not import is named by `harvest list` and `harvest status`; the rest still run."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import robots
from cli import app
from robots._registry import _ROBOTS
from robots.runtime import broken, discover
from sandbox import Sandbox
from settings import Settings
from vault import Vault

runner = CliRunner(env={"COLUMNS": "250"})

RECORD = """
from connectors.sandbox import civil
from robots import Field, Record, robot


class Thing(Record):
    code: str = Field(key=True, title="编号")
"""

# Each file's text, and what its one line must say: the file, the line that failed, the error.
BROKEN = {
    "zz_syntax": ("from robots import robot\n\n\ndef walk(:\n    pass\n", ":4: SyntaxError"),
    "zz_missing": ("import os\nfrom robots import no_such_helper\n", ":2: ImportError: cannot import name"),
    "zz_declared": (
        RECORD + '\n\n@robot(system=civil, record=Thing, schedule="nightly")\nasync def zz_declared(walk):\n'
        "    yield {}\n",
        "RobotDeclarationError: 机器人 zz_declared：schedule 'nightly'",
    ),
    # One robot registers, then the file fails further down: half a file is not run either.
    "zz_half": (
        RECORD
        + "\n\n@robot(system=civil, record=Thing)\nasync def zz_half_ok(walk):\n    yield {}\n\n\n1 / 0\n",
        ": ZeroDivisionError: division by zero",
    ),
}


def _write(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (text, _) in BROKEN.items():
        (folder / f"{name}.py").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def broken_robot_files(tmp_path: Path) -> Iterator[Path]:
    """The broken files in a second folder of the `robots` package, where discovery looks."""
    folder = _write(tmp_path / "unit_robots")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(robots, "__path__", [*robots.__path__, str(folder)])
        yield folder
    discover()  # forget them again for the tests after this one


def test_discovery_keeps_each_broken_module_aside_with_file_line_and_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "unitbots")
    (tmp_path / "unitbots" / "__init__.py").write_text("")
    (tmp_path / "unitbots" / "_helpers.py").write_text("this is not python\n")  # framework: not a robot
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    loaded = discover()
    found = discover("unitbots")
    assert "zz_half_ok" not in found and "zz_declared" not in found
    assert set(loaded) <= set(found)  # the robots that did load are all there
    mine = broken("unitbots")
    assert set(mine) == {f"unitbots.{name}" for name in BROKEN}
    for name, (_, words) in BROKEN.items():
        why = mine[f"unitbots.{name}"]
        assert why.startswith(f"unitbots/{name}.py:") and words in why and "\n" not in why, why
    assert "unitbots.zz_half" not in sys.modules


def test_two_robots_of_one_name_are_refused_naming_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "twinbots").mkdir()
    (tmp_path / "twinbots" / "__init__.py").write_text("")
    twin = RECORD + "\n\n@robot(system=civil, record=Thing)\nasync def zz_twin(walk):\n    yield {}\n"
    for name in ("zz_first", "zz_second"):
        (tmp_path / "twinbots" / f"{name}.py").write_text(twin, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    try:
        found = discover("twinbots")
        why = broken("twinbots")["twinbots.zz_second"]
    finally:
        _ROBOTS.pop("zz_twin", None)
        for module in ("twinbots", "twinbots.zz_first", "twinbots.zz_second"):
            sys.modules.pop(module, None)
    assert found["zz_twin"].module == "twinbots.zz_first"  # the first file's robot still runs
    assert why.startswith("twinbots/zz_second.py:") and "\n" not in why, why
    assert "（twinbots/zz_first.py 和 twinbots/zz_second.py）" in why and "机器人名和数据集名是全局的" in why


def test_list_names_the_broken_files_and_lists_every_other_robot(
    broken_robot_files: Path, vault: Vault
) -> None:
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    for name, (_, words) in BROKEN.items():
        assert f"robots.{name}" in listed.output and words in listed.output
    for robot_name in ("persons", "households", "elderly", "entities"):
        assert robot_name in listed.output
    assert "zz_half_ok" not in listed.output


def test_status_and_its_json_report_the_broken_files(broken_robot_files: Path, vault: Vault) -> None:
    shown = runner.invoke(app, ["status"])
    assert shown.exit_code == 0, shown.output
    assert "robots.zz_syntax" in shown.output and "elderly" in shown.output
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    bad = {row["module"]: row for row in rows if row["health"] == "broken"}
    assert set(bad) == {f"robots.{name}" for name in BROKEN}
    assert ":4: SyntaxError" in bad["robots.zz_syntax"]["error"]
    assert {"persons", "elderly", "entities"} <= {row.get("dataset") for row in rows}


def test_the_scheduler_plans_every_robot_that_loads(broken_robot_files: Path, vault: Vault) -> None:
    listed = runner.invoke(app, ["schedule", "--list"])
    assert listed.exit_code == 0, listed.output
    assert "elderly@civil" in listed.output and "persons@population" in listed.output
    assert "robots.zz_missing" in listed.output


@pytest.mark.browser
def test_a_robot_still_runs_beside_a_broken_file(
    broken_robot_files: Path, settings: Settings, vault: Vault, sandbox: Sandbox
) -> None:
    result = runner.invoke(app, ["run", "elderly", "--account", "donghu"])
    assert result.exit_code == 0, result.output
    assert "civil/donghu" in result.output
    assert "zz_syntax.py:4: SyntaxError" in result.stderr  # one line says what did not load
