"""The deployment files stay true: every command they start exists with the options they pass, every
setting they set is declared, and the vault key reaches a process only as a file."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from settings import Settings

DEPLOY = Path(__file__).parent.parent / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
COMPOSE = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
DECLARED = {f"HARVEST_{name.upper()}" for name in Settings.model_fields}


def _harvest_commands() -> list[list[str]]:
    """Every `harvest …` command line of the units and the compose file, without the program."""
    lines = [
        shlex.split(line.split("harvest ", 1)[1])
        for unit in UNITS
        for line in unit.read_text(encoding="utf-8").splitlines()
        if line.startswith("ExecStart=")
    ]
    for listed in re.findall(r"^\s+command: \[(.+)\]$", COMPOSE, re.M):
        words = [word.strip().strip('"') for word in listed.split(",")]
        if not words[0].startswith("redis"):
            lines.append(words)
    return lines


def test_there_is_a_unit_for_each_role() -> None:
    assert {unit.name for unit in UNITS} == {
        "harvest-scheduler.service",
        "harvest-worker@.service",
        "harvest-desk.service",
    }


@pytest.mark.parametrize("command", _harvest_commands(), ids=" ".join)
def test_every_command_started_exists_with_its_options(command: list[str]) -> None:
    result = CliRunner().invoke(app, [command[0], "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for option in (word for word in command[1:] if word.startswith("--")):
        assert option in result.output, f"`harvest {command[0]}` has no option {option}"


def test_every_setting_the_deployment_sets_is_declared() -> None:
    example = (DEPLOY / "gridharvest.env.example").read_text(encoding="utf-8")
    units = "\n".join(unit.read_text(encoding="utf-8") for unit in UNITS)
    named = set(re.findall(r"^(HARVEST_[A-Z_]+)=", example, re.M))
    named |= set(re.findall(r"\b(HARVEST_[A-Z_]+)[=:]", units + COMPOSE))
    assert named and named <= DECLARED, f"not settings: {sorted(named - DECLARED)}"


def test_the_vault_key_reaches_a_process_only_as_a_private_file() -> None:
    for unit in UNITS:
        text = unit.read_text(encoding="utf-8")
        assert "HARVEST_VAULT_KEY=" not in text  # the key itself would be in the process's environment
        if "harvest-desk" in unit.name:
            assert "vault-key" not in text  # the desk reads the snapshot only
        else:
            assert "LoadCredential=vault-key:" in text and "HARVEST_VAULT_KEY_FILE=%d/vault-key" in text
    assert "HARVEST_VAULT_KEY:" not in COMPOSE and "HARVEST_VAULT_KEY_FILE: /run/secrets/vault_key" in COMPOSE
    # No password in a URL of the compose file: PostgreSQL's comes from the pgpass secret.
    assert not re.search(r"://[^/@\s]*:[^/@\s]+@", COMPOSE)
