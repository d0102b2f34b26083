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

from robots._cassette import Cassette, expected_beside, recorded, write_expected
from robots._check import SAMPLE, findings, sample_table, verdict
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
from robots._runner import Harvester, run_blocking
from robots._scaffold import Asked, scout
from robots._scaffold_write import files as scaffold_files
from robots._scaffold_write import summary as scaffold_summary
from robots._scaffold_write import template as scaffold_template
from robots._scaffold_write import write as write_scaffold

__all__ = [
    "SAMPLE",
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
