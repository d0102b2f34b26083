"""Every command imports only what it uses (issue 15): `harvest --help` loads no database, browser, web
framework, data frame or OCR, and `harvest run` loads no data frame, OCR, web framework or scheduler
before its first request. Each check runs a fresh interpreter, as `harvest` starts one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer

from cli import app

ROOT = Path(__file__).resolve().parent.parent
HARVEST = Path(sys.executable).parent / "harvest"  # the console script pyproject installs

# The store's database, the vault's cipher, Chromium's driver (which `harvest run` needs) and the desk's
# password hashing are kept out of `harvest --help` only; the rest out of both.
RUN_NEEDS = {"sqlalchemy", "sqlmodel", "cryptography", "argon2", "playwright"}
NEVER_BEFORE_A_RUN = {
    "pandas",
    "numpy",
    "openpyxl",
    "fastapi",
    "starlette",
    "uvicorn",
    "apscheduler",
    "ddddocr",
    "PIL",
    "httpx",
}
NOT_FOR_HELP = NEVER_BEFORE_A_RUN | RUN_NEEDS

# What `harvest run ROBOT --account A` does before its first request: its command module, the runtime,
# the robots found, the store opened (its tables made), the vault, the settings.
RUN_PATH = """
import cli._run, connectors, robots.runtime, settings, store, vault
from cli._common import _store
from robots.runtime import Harvester, RichProgress, configure_logging, discover, run_blocking
assert discover(), "no robots found"
_store(settings.load_settings())
"""


def _loaded(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported once ``code`` ran."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_harvest_help_imports_nothing_heavy() -> None:
    heavy = _loaded("import cli") & NOT_FOR_HELP
    assert not heavy, f"`import cli` loads {sorted(heavy)}: import them inside the command that uses them"


def test_a_run_imports_nothing_it_does_not_use_before_its_first_request() -> None:
    heavy = _loaded(RUN_PATH) & NEVER_BEFORE_A_RUN
    assert not heavy, f"`harvest run` loads {sorted(heavy)} before its first request"


def _harvest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HARVEST, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_harvest_help_lists_every_command() -> None:
    done = _harvest("--help")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"run", "check", "query", "serve", "vault", "desk"} <= listed


def test_harvest_run_help_shows_its_options() -> None:
    done = _harvest("run", "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: harvest run" in done.stdout
    assert "--account" in done.stdout and "--all" in done.stdout and "退出码" in done.stdout
