"""The README's tutorial, followed end to end against the sandbox as a newcomer would: every command
of its block in order (vault, new, check, record, the replay test, run, schedule), and the robot it
shows is the very file `harvest new` writes."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import connectors
import robots
from cli import app
from robots._registry import _ROBOTS
from robots.runtime import discover
from sandbox import Sandbox, SandboxSystem
from sandbox._civil import COLUMNS as CIVIL_COLUMNS
from settings import Settings, load_settings
from store import Store
from tests.runtime_helpers import snapshot
from vault import Vault

pytestmark = pytest.mark.browser
README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
TUTORIAL = README[README.index("### Tutorial: a new system in an afternoon") :]
SANDBOX_URL = "http://127.0.0.1:8702"  # the civil system at the default HARVEST_SANDBOX_PORT
runner = CliRunner()


def _commands() -> list[list[str]]:
    block = re.search(r"```sh\n(.*?)```", TUTORIAL, re.S)
    assert block is not None, "the tutorial's commands are a ```sh block"
    return [shlex.split(line) for line in block.group(1).strip().splitlines()]


def _shown_robot() -> str:
    block = re.search(r"<!-- written by harvest new[^>]*-->\n```toml\n(.*?)```", TUTORIAL, re.S)
    assert block is not None, "the tutorial shows the robot harvest new writes"
    return block.group(1)


def _code(text: str) -> list[str]:
    """A TOML text's lines without comments: what it declares, not what it found this time."""
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_tutorial_runs_end_to_end(
    settings: Settings, store: Store, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = sandbox["civil"]
    account = box.account("donghu")
    monkeypatch.chdir(tmp_path)  # the project folder: harvest new and record write into it
    monkeypatch.setattr(connectors, "__path__", [*connectors.__path__, str(tmp_path / "connectors")])
    monkeypatch.setattr(robots, "__path__", [*robots.__path__, str(tmp_path / "robots")])
    try:
        for command in _commands():
            _follow(command, box.url, account.username, account.password)
        written = (tmp_path / "robots" / "yanglao.toml").read_text(encoding="utf-8")
        assert _code(written) == _code(_shown_robot()), written
        _exactly_the_truth(box, store, account.username)
    finally:
        _ROBOTS.pop("yanglao", None)
        sys.modules.pop("connectors.yanglao", None)


def _exactly_the_truth(box: SandboxSystem, store: Store, username: str) -> None:
    """Every column of the list page harvested, as the system holds it, for every record the account sees."""
    columns = {title: column for title, _, column in CIVIL_COLUMNS}
    robot = discover()["yanglao"]
    fields = robot.record.model_fields.items()
    named = {field: columns[info.title] for field, info in fields if info.title in columns}
    assert len(named) == len(columns)
    named["community"] = "community"
    got = snapshot(store, "yanglao").rename(columns=named)[list(named.values())]
    truth = box.truth("elderly", username)[list(named.values())]
    pd.testing.assert_frame_equal(_text(got), _text(truth), check_dtype=False)


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    text = frame.astype(object).where(frame.notna(), "").astype(str).replace({"None": ""})
    return text.sort_values("archive_no").reset_index(drop=True)


def _follow(command: list[str], url: str, username: str, password: str) -> None:
    """One line of the tutorial, run as the reader would type it (the sandbox at its test address)."""
    if command[0] == "pytest":  # the replay test harvest new wrote, run here rather than in a second pytest
        (path,) = command[1:]
        spec = importlib.util.spec_from_file_location("tutorial_replay", Path(path))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        tests = [getattr(module, name) for name in dir(module) if name.startswith("test_")]
        assert tests
        for test in tests:
            test()
        return
    assert command[0] == "harvest", command
    args = [arg.replace(SANDBOX_URL, url) for arg in command[1:]]
    if args[:2] == ["vault", "add"]:
        assert args[args.index("--username") + 1] == username  # the README names the demo account
    typed = f"{password}\n{password}\n" if args[:2] == ["vault", "add"] else None
    result = runner.invoke(app, args, input=typed)
    assert result.exit_code == 0, (command, result.output)
    if args[0] == "check":
        assert "结论：可以运行" in result.output
        # Its browser login showed how the form posts: record's and run's logins need no browser.
        assert Vault.open(load_settings()).get("yanglao", "donghu").logs_in_by == "http"
    if args[0] == "schedule":
        assert "yanglao" in result.output
