"""Shared vault test helpers, and a script the crash and concurrency tests run in child processes.

python -m tests.vault_helpers rotate KILL_AT   # rotate the key, SIGKILL itself before file call KILL_AT
python -m tests.vault_helpers write PREFIX N   # add N accounts PREFIX-0…, parking every other one
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from settings import load_settings
from vault import Vault

ROOT = Path(__file__).resolve().parent.parent
GO_FILE = "go"  # the writers wait for it, so both start together


def make_vault(accounts: int = 3) -> Vault:
    """A vault with a key file in the test's data dir, holding ``accounts`` accounts of population."""
    vault = Vault.init(load_settings())
    for n in range(accounts):
        vault.add("population", f"acct{n}", username=f"user{n}", password=f"pw-{n}-secret", scope=f"c{n}")
    return vault


def _kill_before_call(number: int) -> Callable[[], int]:
    """From now on, SIGKILL this process just before its ``number``-th file system call."""
    calls = 0

    def hooked(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            if calls == number:
                os.kill(os.getpid(), signal.SIGKILL)
            calls += 1
            return real(*args, **kwargs)

        return call

    for name in ("open", "write", "fsync", "replace", "unlink"):
        setattr(os, name, hooked(getattr(os, name)))
    return lambda: calls


def _rotate(kill_at: int) -> None:
    vault = Vault.open(load_settings())
    counted = _kill_before_call(kill_at)
    vault.rotate_key()
    print(counted(), flush=True)


def _write(prefix: str, count: int) -> None:
    settings = load_settings()
    vault = Vault.open(settings)
    while not (settings.data_dir / GO_FILE).exists():
        time.sleep(0.005)
    for n in range(count):
        vault.add("market", f"{prefix}-{n}", username=f"{prefix}{n}", password=f"{prefix}-pw-{n}", scope="x")
        if n % 2:
            vault.park("market", f"{prefix}-{n}", kind="bad_credentials", message="wrong password")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "rotate":
        _rotate(int(args[0]))
    else:
        _write(args[0], int(args[1]))
