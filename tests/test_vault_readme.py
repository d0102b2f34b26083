"""The README's vault example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from settings import load_settings
from vault import Vault

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_readme_vault_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (example,) = [
        block for block in re.findall(r"```python\n(.*?)```", README, re.S) if "from vault" in block
    ]
    Vault.init(load_settings()).add(
        "population", "donghu", username="rk_donghu", password="pw", scope="donghu"
    )
    exec(compile(example, "README.md", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip() == "Secret('population/donghu password')"
