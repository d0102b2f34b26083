"""Start-up: how long a command takes before it does anything (issue 15: each imports only what it uses).

    .venv/bin/python bench/startup.py [--rounds 10] [--persons 300]
    .venv/bin/python bench/startup.py --quick        # 3 rounds: a smoke run

Rows, each a fresh process as an operator starts one: `python -c pass` (the interpreter alone: the floor),
`python -c "import cli"` (what `harvest --help` loads), `harvest --help`, `harvest run --help`, and
`harvest run ROBOT --account A` timed from its spawn to its first request to the sandbox's 人口管理系统
(served by this process on free 127.0.0.1 ports). Each run has a fresh data dir and vault, so that first
request is the login page and Chromium's launch is in it; the run then goes on to its end, which must be
a success. "A night after": the vault first holds what an untimed run left (the recipe of its browser
login, a session the sandbox then ends), so the run checks the session and logs in over HTTP, with no
Chromium. Rounds interleave the rows, so a busy machine slows them alike; median and min of each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # before bench/store.py, as `store`

from robots.runtime import discover
from sandbox import Sandbox, generate_world
from settings import load_settings
from vault import Vault

ROOT = Path(__file__).resolve().parent.parent
HARVEST = Path(sys.executable).with_name("harvest")  # the venv's entry point, as an operator runs it
SYSTEM = "population"
# Issue 15's targets on the machine it was filed on, by row.
TARGETS = {"harvest --help": 0.3, "harvest run: spawn to first request": 1.0}
# Settings of the bench's own environment that would point the runs elsewhere than their fresh data dir.
FOREIGN_SETTINGS = ("HARVEST_DATABASE_URL", "HARVEST_VAULT_KEY", "HARVEST_VAULT_KEY_FILE")


def spawned(command: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds from spawning ``command`` to its exit, which must be a success."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    took = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return took


class FirstRequest:
    """`harvest run ROBOT --account A` against the sandbox: seconds from its spawn to the system's first
    request (the sandbox's own log of what it was sent), on a fresh data dir and vault each time."""

    def __init__(self, box: Sandbox, folder: Path, *, nightly: bool = False) -> None:
        self.box, self.folder, self.rounds, self.nightly = box, folder, 0, nightly
        self.system = box[SYSTEM]
        self.account = self.system.accounts[0]
        self.robot = next(spec.name for spec in discover().values() if spec.system.name == SYSTEM)
        self.env = {key: value for key, value in os.environ.items() if key not in FOREIGN_SETTINGS}
        self.env["HARVEST_SYSTEM_URLS"] = json.dumps({code: s.url for code, s in box.systems.items()})

    def __call__(self) -> float:
        self.rounds += 1
        data_dir = self.folder / f"{'nightly' if self.nightly else 'first'}-{self.rounds}"
        vault = Vault.init(load_settings(data_dir=data_dir))  # outside the timing, as an operator's is
        self.account.enroll(vault)
        command = [str(HARVEST), "run", self.robot, "--account", self.account.account]
        env = self.env | {"HARVEST_DATA_DIR": str(data_dir)}
        if self.nightly:  # the night before, untimed: a browser login that left its recipe and session
            spawned(command, env)
        self.system.reset()  # no session, no traffic: the run logs in afresh
        started = time.time()  # the sandbox stamps each request with time.time()
        spawned(command, env)
        return min(request.started for request in self.system.traffic.requests) - started


def table(times: dict[str, list[float]]) -> str:
    floor = statistics.median(times["python -c pass"])
    lines = [
        f"{'':40} {'median s':>9} {'min s':>7} {'− floor':>8} {'target':>7}",
    ]
    for name, seconds in times.items():
        median = statistics.median(seconds)
        target = f"< {TARGETS[name]:g}" if name in TARGETS else ""
        lines.append(f"{name:40} {median:9.3f} {min(seconds):7.3f} {median - floor:8.3f} {target:>7}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="runs of each row (default 10)")
    parser.add_argument("--persons", type=int, default=300, help="persons in the sandbox (default 300)")
    parser.add_argument("--quick", action="store_true", help="3 rounds: a smoke run")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    python = sys.executable
    with (
        tempfile.TemporaryDirectory(prefix="bench-startup-") as folder,
        Sandbox(generate_world(seed=1, persons=args.persons, communities=2)) as box,
    ):
        rows: dict[str, Callable[[], float]] = {
            "python -c pass": lambda: spawned([python, "-c", "pass"]),
            'python -c "import cli"': lambda: spawned([python, "-c", "import cli"]),
            "harvest --help": lambda: spawned([str(HARVEST), "--help"]),
            "harvest run --help": lambda: spawned([str(HARVEST), "run", "--help"]),
            "harvest run: spawn to first request": FirstRequest(box, Path(folder)),
            "the same, a night after (recipe in vault)": FirstRequest(box, Path(folder), nightly=True),
        }
        times: dict[str, list[float]] = {name: [] for name in rows}
        for n in range(rounds):
            for name, row in rows.items():
                times[name].append(row())
            print(f"round {n + 1}/{rounds} done", file=sys.stderr)
    print(f"{rounds} rounds, load average {os.getloadavg()[0]:.1f} at the end")
    print(table(times))


if __name__ == "__main__":
    main()
