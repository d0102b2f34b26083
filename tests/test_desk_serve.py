"""``harvest serve`` as an operator runs it: a real process serving the desk until it is stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_answers_until_sigterm_and_says_how_to_add_staff(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HARVEST_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "the desk did not start"
                time.sleep(0.2)
        assert page.status_code == 200 and "社区数据查询" in page.text
        home = httpx.get(f"http://127.0.0.1:{port}/", params={"q": "13812345678"}, timeout=5)
        assert home.status_code == 303 and home.headers["location"].startswith("/login")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        output = process.stdout.read() if process.stdout else ""
        assert f"http://127.0.0.1:{port}/" in output and "harvest desk add-user" in output
        assert "desk GET / 303" in output
        assert "13812345678" not in output  # no access log: its lines would carry what staff searched for
    finally:
        process.kill()


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "HARVEST_DESK_PORT" in result.output


def test_a_damaged_link_key_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "desk.key").write_bytes(b"short")
    monkeypatch.setenv("HARVEST_DATA_DIR", str(data))
    result = runner.invoke(app, ["serve", "--port", str(free_port())])
    assert result.exit_code == 2
    assert "desk.key" in result.output and "delete it and restart" in result.output
    assert "Traceback" not in result.output
