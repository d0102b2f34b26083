"""The README stays true: every setting is documented, and its example runs."""

from __future__ import annotations

import re
from pathlib import Path

from settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"`(HARVEST_[A-Z_]+)`", README))
    declared = {f"HARVEST_{name.upper()}" for name in Settings.model_fields}
    assert declared - documented == set(), "document these settings in README.md"
    assert documented - declared == set(), "README.md documents settings that do not exist"


def test_the_readme_python_example_runs(capsys) -> None:
    block = re.search(r"```python\n(.*?)```", README, re.S)
    assert block is not None
    exec(compile(block.group(1), "README.md", "exec"), {})
    url, username, count = capsys.readouterr().out.split()
    assert url.startswith("http://127.0.0.1:") and username == "rk_donghu" and int(count) > 0
