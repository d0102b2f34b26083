"""A SIGKILLed key rotation loses nothing, nor do two processes writing the vault at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from settings import load_settings
from tests.vault_helpers import GO_FILE, ROOT, make_vault
from vault import Vault

ACCOUNTS = 5


def _helper(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HARVEST_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "tests.vault_helpers", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def _rotate(data_dir: Path, kill_at: int) -> tuple[int, str]:
    child = _helper(data_dir, "rotate", str(kill_at))
    out, _ = child.communicate(timeout=60)
    return child.returncode, out


def test_rotate_key_killed_at_every_step_leaves_the_old_or_the_new_key_and_every_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_vault(ACCOUNTS)
    base = load_settings().data_dir
    old_key = load_settings().resolved_vault_key_file.read_text()
    code, out = _rotate(shutil.copytree(base, tmp_path / "count"), 10**9)
    assert code == 0, out
    steps = int(out)
    assert steps >= 10  # the rotation's file calls: staged files, fsyncs, the journal, the swap
    outcomes = set()
    for kill_at in range(steps + 1):
        data_dir = shutil.copytree(base, tmp_path / f"kill{kill_at}")
        code, _ = _rotate(data_dir, kill_at)
        assert code == (-9 if kill_at < steps else 0), kill_at
        monkeypatch.setenv("HARVEST_DATA_DIR", str(data_dir))
        vault = Vault.open(load_settings())  # finishes or undoes the interrupted rotation
        key_now = load_settings().resolved_vault_key_file.read_text()
        outcomes.add("old" if key_now == old_key else "new")
        for n in range(ACCOUNTS):
            secrets = vault.secrets("population", f"acct{n}", robot="r", run_id=str(kill_at))
            assert secrets.password.reveal() == f"pw-{n}-secret", kill_at
        leftovers = sorted(p.name for p in data_dir.iterdir() if p.name.endswith((".new", ".tmp", ".rotate")))
        assert leftovers == [], kill_at
    assert outcomes == {"old", "new"}  # both sides of the commit point were hit


def test_two_processes_writing_at_once_lose_nothing() -> None:
    make_vault(0)
    data_dir = load_settings().data_dir
    writers = [_helper(data_dir, "write", prefix, "30") for prefix in ("a", "b")]
    (data_dir / GO_FILE).touch()
    for writer in writers:
        writer.communicate(timeout=120)
        assert writer.returncode == 0
    accounts = Vault.open(load_settings()).accounts("market")
    assert len(accounts) == 60
    parked = {a.account for a in accounts if a.status == "parked"}
    assert parked == {f"{p}-{n}" for p in "ab" for n in range(30) if n % 2}
