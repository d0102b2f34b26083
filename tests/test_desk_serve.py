"""``harvest serve`` as an operator runs it: a real process serving the desk until it is stopped."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli import app
from desk._staff import StaffDirectory
from settings import load_settings
from store import Snapshot, make_engine
from tests.desk_helpers import PASSWORD, free_port, harvest_serve

runner = CliRunner()
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def test_serve_answers_until_sigterm_and_says_how_to_add_staff(tmp_path: Path) -> None:
    with harvest_serve(tmp_path / "data") as served:
        page = httpx.get(f"{served.url}/login", timeout=5)
        assert page.status_code == 200 and "社区数据查询" in page.text
        home = httpx.get(f"{served.url}/", params={"q": "13812345678"}, timeout=5)
        assert home.status_code == 303 and home.headers["location"].startswith("/login")
        output = served.stop()
        assert served.process.returncode == 0
    assert f"{served.url}/" in output and "harvest desk add-user" in output
    assert "desk GET / 303" in output
    assert "13812345678" not in output  # no access log: its lines would carry what staff searched for


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    assert f"127.0.0.1:{port}" in result.output and "HARVEST_DESK_PORT" in result.output


def test_a_damaged_link_key_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "desk.key").write_bytes(b"short")
    monkeypatch.setenv("HARVEST_DATA_DIR", str(data))
    result = runner.invoke(app, ["serve", "--port", str(free_port())])
    assert result.exit_code == 2
    assert "desk.key" in result.output and "删除它，再重启 harvest serve" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("trusted", "believed"),
    [(None, False), ('["10.0.0.9"]', False), ('["127.0.0.1"]', True)],
    ids=["no-proxy-trusted", "another-proxy-trusted", "this-proxy-trusted"],
)
def test_x_forwarded_headers_count_only_from_a_trusted_proxy(
    tmp_path: Path, trusted: str | None, believed: bool
) -> None:
    data = tmp_path / "data"
    StaffDirectory(make_engine(load_settings(data_dir=data).resolved_database_url)).add(
        "clerk", PASSWORD, role="staff", scope="donghu"
    )
    statuses = []
    env = {"HARVEST_DESK_TRUSTED_PROXIES": trusted} if trusted else {}
    with harvest_serve(data, **env) as served, httpx.Client(base_url=served.url, timeout=10) as browser:
        for n in range(7):  # a guesser that names a new address of its own each time
            form = browser.get("/login").text
            guess = {"name": f"name{n}", "password": "wrong-pw-1", "csrf": CSRF.findall(form)[0]}
            forged = {"X-Forwarded-For": f"203.0.113.{n}", "X-Forwarded-Proto": "https"}
            statuses.append(browser.post("/login", data=guess, headers=forged).status_code)
        form = browser.get("/login").text
        right = {"name": "clerk", "password": PASSWORD, "csrf": CSRF.findall(form)[0]}
        forged = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
        ok = browser.post("/login", data=right, headers=forged)
        if ok.status_code == 429:  # the guesser's address waits its second, and so does the clerk
            assert not believed and int(ok.headers["retry-after"]) <= 2
            time.sleep(int(ok.headers["retry-after"]))
            ok = browser.post("/login", data=right, headers=forged)
    audit = Snapshot(make_engine(load_settings(data_dir=data).resolved_database_url)).audits(limit=100)[0]
    clients = [json.loads(entry.detail or "{}")["client"] for entry in reversed(audit)]
    if believed:
        assert statuses == [401] * 7  # each address its own: the proxy vouches for them
        assert clients[:7] == [f"203.0.113.{n}" for n in range(7)] and clients[-1] == "198.51.100.7"
    else:
        # The guesser is one address, slowed after five failures, and the audit says which.
        assert statuses == [401] * 5 + [429] * 2
        assert set(clients) == {"127.0.0.1"} and len(clients) >= 8
    assert ok.status_code == 303 and ("Secure" in ok.headers["set-cookie"]) == believed  # X-Forwarded-Proto
