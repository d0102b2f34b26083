"""`harvest vault …`: secrets come in by prompt or stdin only, and never go out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from machine import human_time
from settings import load_settings
from tests.vault_helpers import ROOT
from vault import Vault
from vault._cli import app

runner = CliRunner(env={"COLUMNS": "250"})
PASSWORD = "Cli-pw-7f3a9e"
SEED = "JBSWY3DPEHPK3PXP"


def _add(account: str = "donghu", *extra: str, stdin: str = f"{PASSWORD}\n") -> None:
    args = ["add", "population", account, "--username", f"rk_{account}", "--scope", account, *extra]
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code == 0, result.output


def test_init_add_list_status_and_remove() -> None:
    created = runner.invoke(app, ["init"])
    assert created.exit_code == 0 and "vault.key" in created.output
    assert runner.invoke(app, ["init"]).exit_code == 1
    _add("donghu", "--totp", "--notes", "王芳", stdin=f"{PASSWORD}\n{SEED}\n")
    _add("xiyuan")
    Vault.open(load_settings()).park("population", "xiyuan", kind="locked", message="账号已锁定")
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0
    assert "rk_donghu" in listed.output and "locked: 账号已锁定" in listed.output and "王芳" in listed.output
    as_json = json.loads(runner.invoke(app, ["list", "--json"]).output)
    assert [(a["account"], a["status"], a["has_totp"]) for a in as_json] == [
        ("donghu", "ok", True),
        ("xiyuan", "parked", False),
    ]
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0 and "账号：      2 个，已停用 1 个" in status.output
    assert f"密钥来自：  密钥文件 {load_settings().resolved_vault_key_file}" in status.output
    for output in (listed.output, json.dumps(as_json), status.output):
        assert PASSWORD not in output and SEED not in output
    assert runner.invoke(app, ["remove", "population", "xiyuan"]).exit_code == 0
    assert [a.account for a in Vault.open(load_settings()).accounts()] == ["donghu"]


def test_set_password_from_stdin_unparks_the_account() -> None:
    runner.invoke(app, ["init"])
    _add()
    Vault.open(load_settings()).park(
        "population", "donghu", kind="bad_credentials", message="用户名或密码错误"
    )
    result = runner.invoke(app, ["set", "population", "donghu", "--password"], input="New-pw-2\n")
    assert result.exit_code == 0 and "状态 ok" in result.output
    secrets = Vault.open(load_settings()).secrets("population", "donghu", robot="r", run_id="1")
    assert secrets.password.reveal() == "New-pw-2"


def test_errors_are_one_red_line_with_exit_2_for_usage_and_1_otherwise() -> None:
    missing = runner.invoke(app, ["list"])
    assert missing.exit_code == 1 and missing.stderr.strip().count("\n") == 0
    assert "还没有保险库" in missing.stderr and "harvest vault init" in missing.stderr
    runner.invoke(app, ["init"])
    _add()
    unknown = runner.invoke(app, ["set", "population", "nobody", "--notes", "x"])
    assert unknown.exit_code == 2 and "保险库里没有账号 population/nobody" in unknown.stderr
    assert "harvest vault list" in unknown.stderr
    again = runner.invoke(
        app, ["add", "population", "donghu", "--username", "u", "--scope", "s"], input="pw\n"
    )
    assert again.exit_code == 2 and "已在保险库里" in again.stderr and "vault set" in again.stderr
    unchanged = runner.invoke(app, ["set", "population", "donghu"])
    assert unchanged.exit_code == 2 and "没有要修改的内容" in unchanged.stderr
    no_password = runner.invoke(
        app, ["add", "population", "other", "--username", "u", "--scope", "s"], input=""
    )
    assert no_password.exit_code == 2 and "stdin" in no_password.stderr
    on_the_command_line = runner.invoke(
        app, ["add", "population", "x", "--username", "u", "--scope", "s", "--password", PASSWORD]
    )
    assert on_the_command_line.exit_code == 2  # there is no such option, on purpose
    load_settings().resolved_vault_key_file.chmod(0o644)
    insecure = runner.invoke(app, ["list"])
    assert insecure.exit_code == 1 and insecure.stderr.strip().count("\n") == 0
    assert "同组或其他用户也能访问" in insecure.stderr and "chmod 600" in insecure.stderr


def test_rotate_key_from_the_command_line() -> None:
    runner.invoke(app, ["init"])
    _add()
    key_file = load_settings().resolved_vault_key_file
    old = key_file.read_text()
    result = runner.invoke(app, ["rotate-key"])
    assert result.exit_code == 0 and key_file.read_text() != old
    assert Vault.open(load_settings()).get("population", "donghu").username == "rk_donghu"


def _command_lines() -> str:
    seen = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                seen.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue  # the process ended meanwhile
    return "\n".join(seen)


def test_ps_never_shows_the_password_that_add_reads_from_stdin() -> None:
    runner.invoke(app, ["init"])
    command = [sys.executable, "-c", "from vault._cli import app; app()", "add", "population", "donghu"]
    command += ["--username", "rk_donghu", "--scope", "donghu"]
    child = subprocess.Popen(
        command, cwd=ROOT, env=dict(os.environ), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None
    seen = _command_lines()
    time.sleep(0.3)  # let it get as far as waiting for the password
    seen += _command_lines()
    environ = Path(f"/proc/{child.pid}/environ").read_bytes().decode(errors="replace")
    child.stdin.write(PASSWORD + "\n")
    child.stdin.close()
    while child.poll() is None:
        seen += _command_lines()
    assert child.returncode == 0
    assert "from vault._cli import app" in seen  # we did look at the child's command line
    assert PASSWORD not in seen and PASSWORD not in environ
    secrets = Vault.open(load_settings()).secrets("population", "donghu", robot="r", run_id="1")
    assert secrets.password.reveal() == PASSWORD


def test_list_shows_times_in_beijing_time_and_parking_messages_as_written() -> None:
    runner.invoke(app, ["init"])
    _add()
    vault = Vault.open(load_settings())
    vault.park("population", "donghu", kind="needs_human", message="a[href='/unlock/'] 需要人工处理")
    parked_at = vault.get("population", "donghu").parked_at
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "a[href='/unlock/'] 需要人工处理" in listed.output
    assert human_time(parked_at) in listed.output and "最近使用（北京时间）" in listed.output
