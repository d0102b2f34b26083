"""The runtime that runs robots, for the CLI, the scheduler, the desk, benchmarks and tests.

A robot author needs only ``robots`` (``robot``, ``Record``, ``Field``, ``Walk``, ``Page`` and the
failures a walk may raise); what runs, checks, records, scaffolds and lists robots is here:

- ``Harvester`` runs robots (``run``) or tries them (``trial``: ``harvest check``, ``harvest record``);
  ``RunReport`` and ``Trial`` say how each ended. ``RunHooks`` is its one extension point: the
  progress bar (``RichProgress``), the run log (``RunLog``) and the scheduler's failure policy hear
  every run through it.
- ``discover``, ``registered``, ``broken``, ``dataset_titles``: the robots of ``robots/`` read back as
  ``RobotSpec`` data, ``*.toml`` ones included.
- what ``harvest check`` prints (``sample_table``, ``findings``, ``verdict``), what ``harvest record``
  writes (``Cassette``, ``recorded``, ``write_expected``), what ``harvest new`` finds and writes.
"""

import importlib
from typing import TYPE_CHECKING, Any

from machine import run_blocking
from robots._logs import configure_logging
from robots._progress import RichProgress
from robots._registry import (
    RobotDeclarationError,
    RobotSpec,
    broken,
    dataset_titles,
    discover,
    registered,
)
from robots._reports import Hooks, RunHooks, RunLog, RunReport, Trial
from robots._runner import Harvester

# What `harvest check`, `record` and `new` use, imported on first use (PEP 562): `harvest run` does not
# wait for them. Name here: (module, name there).
_ON_USE = {
    "Cassette": ("robots._cassette", "Cassette"),
    "expected_beside": ("robots._cassette", "expected_beside"),
    "recorded": ("robots._cassette", "recorded"),
    "write_expected": ("robots._cassette", "write_expected"),
    "findings": ("robots._check", "findings"),
    "sample_table": ("robots._check", "sample_table"),
    "verdict": ("robots._check", "verdict"),
    "Asked": ("robots._scaffold", "Asked"),
    "scout": ("robots._scaffold", "scout"),
    "scaffold_files": ("robots._scaffold_write", "files"),
    "scaffold_summary": ("robots._scaffold_write", "summary"),
    "scaffold_template": ("robots._scaffold_write", "template"),
    "write_scaffold": ("robots._scaffold_write", "write"),
}

if TYPE_CHECKING:
    from robots._cassette import Cassette, expected_beside, recorded, write_expected
    from robots._check import findings, sample_table, verdict
    from robots._scaffold import Asked, scout
    from robots._scaffold_write import files as scaffold_files
    from robots._scaffold_write import summary as scaffold_summary
    from robots._scaffold_write import template as scaffold_template
    from robots._scaffold_write import write as write_scaffold


def __getattr__(name: str) -> Any:
    if name not in _ON_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, there = _ON_USE[name]
    found = getattr(importlib.import_module(module), there)
    globals()[name] = found  # the next look-up is an ordinary one
    return found


__all__ = [
    "Asked",
    "Cassette",
    "Harvester",
    "Hooks",
    "RichProgress",
    "RobotDeclarationError",
    "RobotSpec",
    "RunHooks",
    "RunLog",
    "RunReport",
    "Trial",
    "broken",
    "configure_logging",
    "dataset_titles",
    "discover",
    "expected_beside",
    "findings",
    "recorded",
    "registered",
    "run_blocking",
    "sample_table",
    "scaffold_files",
    "scaffold_summary",
    "scaffold_template",
    "scout",
    "verdict",
    "write_expected",
    "write_scaffold",
]
