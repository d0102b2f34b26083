"""The README stays true: every setting is documented, and its example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connectors import FormLogin, System
from sandbox import Sandbox
from settings import Settings
from store import Store
from tests.runtime_helpers import harvest
from vault import Vault

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"`(HARVEST_[A-Z_]+)`", README))
    declared = {f"HARVEST_{name.upper()}" for name in Settings.model_fields}
    assert declared - documented == set(), "document these settings in README.md"
    assert documented - declared == set(), "README.md documents settings that do not exist"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_the_readme_sandbox_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(_python_blocks()[0], "README.md", "exec"), {})
    url, username, count = capsys.readouterr().out.split()
    assert url.startswith("http://127.0.0.1:") and username == "rk_donghu" and int(count) > 0


def test_the_readme_store_example_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_blocks()[1], "README.md", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.split() == ["1", "王*", "王伟"]


@pytest.mark.browser
def test_the_readme_robot_runs_against_the_sandbox(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    (block,) = [b for b in _python_blocks() if "@robot(" in b]
    exec(compile(block, "README.md", "exec"), {"__name__": "robots.readme_example"})
    (report,) = harvest(settings, store, vault, [("residents", "donghu")])
    truth = sandbox["population"].truth("persons", sandbox["population"].account("donghu").username)
    assert report.status == "ok" and report.records == len(truth)
    assert len([line for line in block.strip().splitlines() if line.strip()]) <= 16


def test_the_readme_system_declaration_is_a_system_the_form_finder_can_use() -> None:
    (block,) = [b for b in _python_blocks() if "= System(" in b]
    names: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), names)
    system = names["health"]
    assert isinstance(system, System) and isinstance(system.login, FormLogin)
    assert system.login.username is None and system.login.password is None  # found by the password field
    assert system.lockout_threshold == 5 and system.url("/admin/index").endswith(":8080/admin/index")
