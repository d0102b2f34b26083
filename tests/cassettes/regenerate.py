"""Record the demo robots' cassettes again, from a small private sandbox. Run by hand, not by the suite:

    .venv/bin/python tests/cassettes/regenerate.py

It starts the sandbox (seed 5, 240 persons, 2 communities) on free ports, puts the first demo
account of each system in a throwaway vault, and runs ``harvest record ROBOT --account A --plain``
for every demo robot. The sandbox's data is synthetic, so these cassettes are plain (gzip JSON);
a cassette of a real system is sealed with the vault key instead (no ``--plain``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from robots.runtime import discover
from sandbox import Sandbox, generate_world
from settings import load_settings
from vault import Vault

HERE = Path(__file__).parent
HARVEST = Path(sys.executable).with_name("harvest")


def main() -> int:
    world = generate_world(seed=5, persons=240, communities=2)
    demo = [r for r in discover().values() if r.module.startswith("robots.sandbox_")]
    with Sandbox(world) as box, tempfile.TemporaryDirectory(prefix="cassettes-") as data_dir:
        env = {
            **os.environ,
            "HARVEST_DATA_DIR": data_dir,
            "HARVEST_SYSTEM_URLS": json.dumps({code: system.url for code, system in box.systems.items()}),
        }
        os.environ.update(env)
        vault = Vault.init(load_settings())
        chosen = {}
        for account in box.accounts:
            if account.system not in chosen:
                chosen[account.system] = account.account
                account.enroll(vault)
        failed = 0
        for robot in demo:
            out = HERE / f"{robot.name}.cassette"
            command = [str(HARVEST), "record", robot.name, "--account", chosen[robot.system.name]]
            done = subprocess.run([*command, "--plain", "--out", str(out)], env=env, check=False)
            failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
