"""Each sandbox system has a demo robot of at most 15 lines of declaration, record class included,
and at least three demo robots are declarative TOML files: the bar a new system's robot is held to."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

from robots.runtime import RobotSpec, discover
from sandbox import SPECS

MAX_LINES = 15
DEMO = {name: spec for name, spec in discover().items() if spec.module.startswith("robots.sandbox_")}


def declaration_lines(spec: RobotSpec) -> int:
    """Lines an author wrote for ``spec``: its record class and walk (or its TOML), without blank
    lines, comments, docstrings and imports."""
    toml = _toml(spec)
    if toml is not None:
        text = toml.read_text(encoding="utf-8")
        return sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    module = sys.modules[spec.module]
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    wanted = {spec.record.__name__, spec.walk.__name__}
    lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.name in wanted:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines.update(range(start, node.end_lineno + 1))  # type: ignore[operator]
            doc = node.body[0]
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                lines.difference_update(range(doc.lineno, doc.end_lineno + 1))  # type: ignore[operator]
    source = Path(module.__file__).read_text(encoding="utf-8").splitlines()
    return sum(1 for n in lines if source[n - 1].strip() and not source[n - 1].lstrip().startswith("#"))


def _toml(spec: RobotSpec) -> Path | None:
    """The TOML file ``spec`` was declared in, if it was."""
    if spec.module in sys.modules:
        return None
    folder = Path(inspect.getfile(sys.modules["robots"])).parent
    return folder / f"{spec.module.rpartition('.')[2]}.toml"


def test_every_sandbox_system_has_a_demo_robot_of_at_most_15_lines() -> None:
    shortest = {}
    for spec in DEMO.values():
        lines = declaration_lines(spec)
        shortest[spec.system.name] = min(lines, shortest.get(spec.system.name, lines))
    assert set(shortest) == {s.code for s in SPECS}
    assert {system: n for system, n in shortest.items() if n > MAX_LINES} == {}, shortest


def test_at_least_three_demo_robots_are_declarative_files() -> None:
    declared = [s.name for s in DEMO.values() if _toml(s)]
    assert len(declared) >= 3, declared
