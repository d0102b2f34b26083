"""The `harvest` command as an operator meets it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import typer
from typer.testing import CliRunner

from cli import app
from sandbox import SPECS

runner = CliRunner()


def test_sandbox_accounts_prints_one_account_per_system_and_community() -> None:
    result = runner.invoke(app, ["sandbox", "--accounts", "--persons", "300", "--communities", "2"])
    assert result.exit_code == 0, result.output
    accounts = json.loads(result.stdout)
    assert {(a["system"], a["scope"]) for a in accounts} == {
        (spec.code, scope) for spec in SPECS for scope in ("donghu", "xiyuan")
    }
    assert len(SPECS) == 6
    assert all(a["username"] and a["password"] for a in accounts)
    again = json.loads(
        runner.invoke(app, ["sandbox", "--accounts", "--persons", "300", "--communities", "2"]).stdout
    )
    assert again == accounts


def test_a_bad_switch_is_a_usage_error_that_names_the_fix() -> None:
    for bad, hint in (
        ("population.nope=1", "unknown sandbox switch"),
        ("captcha=true", "SYSTEM.SWITCH=VALUE"),
    ):
        result = runner.invoke(app, ["sandbox", "--accounts", "--set", bad])
        assert result.exit_code == 2
        assert hint in result.output


def test_help_explains_the_sandbox_command() -> None:
    result = runner.invoke(app, ["sandbox", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--accounts" in result.output and "SYSTEM.SWITCH=VALUE" in result.output


def test_sandbox_serves_in_the_foreground_until_interrupted(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "HARVEST_SANDBOX_PORT": "0", "HARVEST_SANDBOX_PERSONS": "400"}
    command = [sys.executable, "-m", "cli", "sandbox", "--set", "population.layout_changed=true"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
    )
    try:
        output = ""
        deadline = time.monotonic() + 60
        while "Ctrl+C" not in output and time.monotonic() < deadline:
            line = process.stdout.readline() if process.stdout else ""
            if not line and process.poll() is not None:
                break
            output += line
        urls = re.findall(r"http://127\.0\.0\.1:\d+", output)
        assert len(urls) == len(SPECS), output
        assert "rk_donghu" in output and "layout_changed=True" in output
        login = httpx.get(f"{urls[0]}/login")
        assert login.status_code == 200 and "人口管理系统" in login.text
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()


def test_a_port_in_use_stops_the_sandbox_with_a_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["sandbox", "--persons", "200", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "HARVEST_SANDBOX_PORT" in result.output


def _commands(command: click.Command, path: str = "harvest") -> Iterator[tuple[str, click.Command]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


def test_every_command_and_option_is_explained_in_chinese() -> None:
    chinese = re.compile(r"[\u4e00-\u9fff]")
    for path, command in _commands(typer.main.get_command(app)):
        if path.startswith("harvest desk"):
            continue  # desk/_cli.py speaks for itself
        assert chinese.search(command.help or ""), path
        for param in command.params:
            helped = getattr(param, "help", None)
            if param.name != "help" and helped:
                assert chinese.search(helped), f"{path} {param.name}: {helped}"
