"""The robot runtime speaks to operators in one language: every failure message it raises and every
warning it logs is Chinese, on one line (technical names such as selectors, settings and commands
stay as they are inside it)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import HarvestFailure
from robots.runtime import RobotDeclarationError
from store import RevealRefused, StoreError, UnknownDataset

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = [
    *sorted((ROOT / "connectors").glob("_*.py")),
    *sorted((ROOT / "robots").glob("_*.py")),
    ROOT / "store" / "_store.py",
    ROOT / "store" / "_snapshot.py",
]
CJK = re.compile(r"[\u4e00-\u9fff]")
LOGGED = {"warning", "error"}  # what an operator reads in the log; debug and info lines are ours
CARRIERS = {"too_long"}  # helpers that put their argument into a failure message


def _classes(root: type) -> set[str]:
    found, pending = set(), [root]
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return found


FAILURES = (
    _classes(HarvestFailure)
    | _classes(StoreError)
    | {cls.__name__ for cls in (RobotDeclarationError, RevealRefused, UnknownDataset)}
)


def _text(node: ast.expr) -> str:
    """The literal parts of a message (a string, an f-string, or implicitly joined ones)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(part) for part in node.values if isinstance(part, ast.Constant))
    return ""


def _messages(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = getattr(func, "id", "") or getattr(func, "attr", "")
            if name in FAILURES or name in CARRIERS or (name in LOGGED and isinstance(func, ast.Attribute)):
                yield node.lineno, _text(node.args[0])
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Attribute) and target.attr == "message" for target in node.targets
        ):
            yield node.lineno, _text(node.value)  # a login attempt's explanation, quoted in the failure


@pytest.mark.parametrize("path", RUNTIME, ids=lambda path: str(path.relative_to(ROOT)))
def test_failure_messages_and_warnings_are_chinese_lines(path: Path) -> None:
    found = [(line, text) for line, text in _messages(path) if re.search(r"[A-Za-z]{2,}", text)]
    english = [f"{path.name}:{line}: {text!r}" for line, text in found if not CJK.search(text)]
    broken = [f"{path.name}:{line}: {text!r}" for line, text in found if "\n" in text]
    assert not english and not broken, "\n".join(english + broken)


def test_the_scan_sees_the_messages_it_checks() -> None:
    seen = {path.name: len(list(_messages(path))) for path in RUNTIME}
    assert seen["_session.py"] >= 8 and seen["_login.py"] >= 8 and seen["_walk.py"] >= 8, seen
