"""A district, simulated: one night's runs of many communities, through one machine's scheduler and
through a worker pool over Redis and PostgreSQL.

    .venv/bin/python bench/district.py [--communities 50] [--persons 20000] [--workers 4] [--threads 4]
                                       [--systems population,civil,...] [--sides local,pool,kill]

`harvest sandbox` serves a world of ``--communities`` communities in a process of its own. Each system
gives one account per community (as a unit's real logins), so the night is every demo robot × every
account of its system: with 50 communities and the six systems' seven robots, 350 runs. Each side
starts on an empty database and a new vault holding those accounts (so every run is an account's
first: a browser login, a first harvest) and is handed every job at once, the way the scheduler's
daemon hands on the jobs that fire (``HarvestScheduler.fired``), each system's declared politeness
in force (``sessions`` accounts at once, its ``rate`` and ``concurrency`` shared among them):

- local: one process, ``HarvestScheduler`` with its ``LocalExecutor`` (``--threads`` runs at once,
  ``HARVEST_SCHEDULER_WORKERS``), SQLite, as `harvest schedule` runs on one machine;
- pool: the same scheduler sends each job to Redis (``DramatiqExecutor``); ``--workers`` `harvest
  worker --threads 1` processes on this machine run them, PostgreSQL the store; private Redis and
  PostgreSQL servers started for the run (the tests', ``tests/services.py``: fsync off);
- kill: the pool again, and once a third of the runs have ended, one worker is SIGKILLed in the
  middle of a run and a new one started (as systemd's ``Restart=always`` would). Its run must be
  redelivered and complete once (``<run id>`` killed, ``<run id>-2`` ok), every job published once,
  every account lease free at the end, and none of the killed worker's Chromium left.

Printed per side: wall time from the first job handed out to the last run's end, runs/hour, records
seen per second (every ok run's records over that time), runs ok and failed, and per system what the
sandbox saw: the most accounts it served at once against what the system allows (its ``sessions``),
sessions kicked (an account logged in twice: must be 0) and failed password checks (must be 0).

This machine runs the sandbox, the databases and every worker; on two cores the pool's figures
are those of processes that escape one process's GIL, not of machines added.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from served_sandbox import HARVEST, free_ports, sandbox_process
from sqlmodel import Session, select

from connectors import owned_browsers
from robots.runtime import configure_logging, discover
from sandbox import DemoAccount, Sandbox, generate_world
from scheduler import HarvestScheduler
from scheduler._daemon import run_job
from settings import Settings, load_settings
from store import Lease, Run, Store, make_engine
from vault import Vault

SEED = 5
COMMUNITIES = 50
PERSONS = 20_000  # 400 persons a community
WORKERS = 4
HEARTBEAT_S = 10  # a killed worker's run goes to another after this (HARVEST_WORKER_HEARTBEAT_S)
NIGHT_LIMIT_S = 3 * 3600.0
ENDED = ("ok", "failed", "cancelled")
# Settings of the caller's that would point the runs away from the side's own data dir, vault and services.
FOREIGN_SETTINGS = (
    "HARVEST_DATABASE_URL",
    "HARVEST_VAULT_KEY",
    "HARVEST_VAULT_KEY_FILE",
    "HARVEST_REDIS_URL",
    "HARVEST_EXECUTOR",
    "HARVEST_POLITENESS",
)


Victim = tuple[Run, int, list[int]]  # the killed run, its worker's pid, the Chromium it owned then


@dataclass
class Night:
    """What one side did: its runs, its time, what the sandbox saw of it, and the kill's findings."""

    side: str
    seconds: float
    runs: list[Run]
    seen: dict[str, dict]  # system code → the sandbox's stats
    slots: dict[str, int]  # system code → accounts it allows at once
    checks: list[tuple[str, bool]] = field(default_factory=list)  # the kill's claims, each held or not

    @property
    def finals(self) -> list[Run]:
        """Each job's last attempt."""
        last: dict[tuple[str, str], Run] = {}
        for run in self.runs:
            last[(run.robot, run.account)] = run
        return list(last.values())


# ---- a side's settings and services ---------------------------------------------------------------


def side_env(data_dir: Path, urls: dict[str, str], **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_SETTINGS}
    env |= {
        "HARVEST_DATA_DIR": str(data_dir),
        "HARVEST_SYSTEM_URLS": json.dumps(urls),
        "HARVEST_SCHEDULE_JITTER_S": "0",
        "HARVEST_STOP_TIMEOUT_S": "0",
    }
    return env | {f"HARVEST_{name.upper()}": value for name, value in settings.items()}


def enroll(settings: Settings, accounts: list[DemoAccount]) -> None:
    vault = Vault.init(settings)
    for account in accounts:
        account.enroll(vault)


def reset(urls: dict[str, str]) -> None:
    for url in urls.values():
        httpx.post(f"{url}/__sandbox__/reset").raise_for_status()


def sandbox_seen(urls: dict[str, str]) -> dict[str, dict]:
    return {code: httpx.get(f"{url}/__sandbox__/stats").json() for code, url in urls.items()}


class Workers:
    """`harvest worker --threads 1` processes on one environment; ``replace`` starts one for a dead one."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int) -> None:
        started = [self._spawn() for _ in range(count)]
        for process, out in started:
            self._ready(process, out)

    def _spawn(self) -> tuple[subprocess.Popen[bytes], Path]:
        n = len(self.processes)
        out = self.folder / f"worker-{n}.out"
        process = subprocess.Popen(
            [str(HARVEST), "worker", "--threads", "1"],
            env=self.env,
            stdout=out.open("wb"),
            stderr=(self.folder / f"worker-{n}.log").open("wb"),
        )
        self.processes.append(process)
        return process, out

    def _ready(self, process: subprocess.Popen[bytes], out: Path, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while "工作进程已启动" not in out.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"harvest worker did not start; see {out.with_suffix('.log')}")
            time.sleep(0.2)

    def replace(self) -> None:
        self._ready(*self._spawn())

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def pool_services() -> Iterator[tuple[object, object]]:
    from tests.services import postgres_server, redis_server  # the tests' private servers

    with postgres_server() as postgres, redis_server() as redis:
        yield postgres, redis


# ---- one night --------------------------------------------------------------------------------------


def runs_of(store: Store) -> list[Run]:
    with Session(store.engine) as session:
        return list(session.exec(select(Run).order_by(Run.started_at)))  # type: ignore[arg-type]


def ended_jobs(runs: list[Run]) -> int:
    return len({(run.robot, run.account) for run in runs if run.status in ENDED})


def night(
    side: str,
    env: dict[str, str],
    accounts: list[DemoAccount],
    urls: dict[str, str],
    folder: Path,
    workers: int = 0,
    kill: bool = False,
) -> Night:
    os.environ.clear()
    os.environ.update(env)
    settings = load_settings()
    configure_logging(settings, level="WARNING", stream=(folder / "scheduler.log").open("a"))
    enroll(settings, accounts)
    store = Store(make_engine(settings.resolved_database_url))
    scheduler = HarvestScheduler(settings)
    pool = Workers(env, folder)
    reset(urls)
    checks: list[tuple[str, bool]] = []
    try:
        if workers:
            pool.start(workers)
        began = time.monotonic()
        # The jobs' cron lines fire together and the schedule's jitter spreads them: a shuffled order.
        for job in random.Random(SEED).sample(sorted(scheduler.jobs), len(scheduler.jobs)):
            scheduler.fired(run_job, [job])
        total = len(scheduler.jobs)
        victim: Victim | None = None
        running_since: dict[str, float] = {}  # run id → when this loop first saw it running
        while (ended := ended_jobs(runs := runs_of(store))) < total:
            if time.monotonic() - began > NIGHT_LIMIT_S:
                raise SystemExit(f"{side}: {ended} of {total} runs ended in {NIGHT_LIMIT_S:.0f} s")
            for run in runs:
                if run.status == "running":
                    running_since.setdefault(run.id, time.monotonic())
            if kill and victim is None and ended >= total // 3:
                victim = kill_one(pool, runs, running_since, logged_in(urls, accounts))
            progress(side, ended, total, began)
            time.sleep(0.5)
        seconds = time.monotonic() - began
        print(file=sys.stderr)
        seen = sandbox_seen(urls)
    finally:
        scheduler.executor.stop(0)
        pool.stop()
    runs = runs_of(store)
    if kill:
        checks = kill_checks(victim, runs, store)
    store.engine.dispose()
    slots = {spec.system.name: spec.system.politeness.slots for spec in discover().values()}
    return Night(side, seconds, runs, seen, slots, checks)


def progress(side: str, ended: int, total: int, began: float) -> None:
    """On a terminal, one line kept up to date; in a log, a line at each tenth of the runs."""
    took = time.monotonic() - began
    if sys.stderr.isatty():
        print(f"\r{side}: {ended}/{total} runs ended, {took:.0f} s", end="", file=sys.stderr, flush=True)
    elif ended and (ended * 10 // total) > ((ended - 1) * 10 // total) and _shown.get(side) != ended:
        _shown[side] = ended
        print(f"{side}: {ended}/{total} runs ended, {took:.0f} s", file=sys.stderr, flush=True)


_shown: dict[str, int] = {}


def logged_in(urls: dict[str, str], accounts: list[DemoAccount]) -> set[tuple[str, str]]:
    """The (system, account) pairs the sandbox has seen log in."""
    usernames = {(a.system, a.username): a.account for a in accounts}
    seen = sandbox_seen(urls)
    return {
        (code, usernames[(code, event["username"])])
        for code, stats in seen.items()
        for event in stats["sessions"]
        if event["event"] == "login" and (code, event["username"]) in usernames
    }


def kill_one(
    pool: Workers, runs: list[Run], running_since: dict[str, float], logged: set[tuple[str, str]]
) -> Victim | None:
    """SIGKILL the worker of a run that has logged in and been going for a second, and start another.

    Not one in the middle of its login: a password sent without an answer seen is spent, and with the
    sandbox's lockout threshold of 3 the next attempt would then park the account (connectors._session)
    until a person has logged in by hand. That is the lockout guard working, not a redelivery."""
    pids = {process.pid: process for process in pool.processes if process.poll() is None}
    now = time.monotonic()
    going = [
        run
        for run in runs
        if run.status == "running"
        and run.pid in pids
        and (run.system, run.account) in logged
        and now - running_since[run.id] > 1.0
    ]
    if not going:
        return None
    run = going[0]
    browsers = [pid for pid, owner in owned_browsers().items() if owner == run.pid]
    pids[run.pid].send_signal(signal.SIGKILL)
    pids[run.pid].wait(10)
    print(f"\nkilled worker {run.pid} in run {run.id[:8]} ({run.robot}/{run.account})", file=sys.stderr)
    pool.replace()
    return run, run.pid, browsers


def kill_checks(victim: Victim | None, runs: list[Run], store: Store) -> list[tuple[str, bool]]:
    if victim is None:
        return [("a worker was killed in the middle of a run", False)]
    killed, pid, browsers = victim
    again = f"{killed.id}-2"
    attempts = {run.id: run.status for run in runs if run.id.split("-")[0] == killed.id}
    per_job = Counter((run.robot, run.account) for run in runs if run.status == "ok")
    leases = [
        Lease(store.engine, f"account:{run.system}/{run.account}", what="bench").holder() for run in runs
    ]
    left = [browser for browser, owner in owned_browsers().items() if owner == pid]
    return [
        (f"run {killed.id[:8]}'s attempts: {attempts}", attempts == {killed.id: "killed", again: "ok"}),
        ("every job published once", set(per_job.values()) == {1}),
        ("every account lease free", all(holder is None for holder in leases)),
        (f"the killed worker's Chromium: {len(browsers)} at the kill, {len(left)} left", not left),
    ]


# ---- the report ---------------------------------------------------------------------------------------


def report(nights: list[Night]) -> None:
    heads = ("wall s", 8), ("runs", 5), ("ok", 5), ("failed", 6), ("runs/hour", 10), ("records", 9)
    print(f"{'side':<6} " + " ".join(f"{head:>{width}}" for head, width in heads) + f" {'records/s':>10}")
    for n in nights:
        finals = n.finals
        ok = [run for run in finals if run.status == "ok"]
        records = sum(run.seen for run in ok)
        print(
            f"{n.side:<6} {n.seconds:>8.1f} {len(finals):>5} {len(ok):>5} {len(finals) - len(ok):>6} "
            f"{len(finals) / n.seconds * 3600:>10,.0f} {records:>9,} {records / n.seconds:>10,.1f}"
        )
    print("\nper system: most accounts served at once / allowed · sessions kicked · failed password checks")
    for n in nights:
        cells = []
        for code, seen in n.seen.items():
            kicked = sum(event["event"] == "kicked" for event in seen["sessions"])
            wrong = sum(attempt["outcome"] == "bad_password" for attempt in seen["attempts"])
            cells.append(f"{code} {seen['busiest']}/{n.slots.get(code, '?')} · {kicked} · {wrong}")
        print(f"{n.side:<6} " + " | ".join(cells))
    for n in nights:
        failed = Counter(f"{run.failure_kind}: {run.message}" for run in n.finals if run.status != "ok")
        for why, count in failed.most_common(5):
            print(f"{n.side}: {count} failed, {why}")
        for claim, held in n.checks:
            print(f"{n.side}: {'held' if held else 'BROKEN'}: {claim}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, default=COMMUNITIES)
    parser.add_argument("--persons", type=int, default=PERSONS)
    parser.add_argument("--workers", type=int, default=WORKERS, help="`harvest worker` processes")
    parser.add_argument("--threads", type=int, default=WORKERS, help="runs of the local scheduler at once")
    parser.add_argument("--systems", default="", help="comma-separated system codes (default: all)")
    parser.add_argument("--sides", default="local,pool,kill")
    args = parser.parse_args()
    world = generate_world(seed=SEED, persons=args.persons, communities=args.communities)
    box = Sandbox(world)  # not started: its accounts; `harvest sandbox` serves the same world
    chosen = set(args.systems.split(",")) - {""} or set(box.systems)
    accounts = [account for account in box.accounts if account.system in chosen]
    port = free_ports(len(box.systems))
    urls = {code: f"http://127.0.0.1:{port + i}" for i, code in enumerate(box.systems)}
    sides = args.sides.split(",")
    print(
        f"{args.communities} communities, {args.persons:,} persons · systems {', '.join(sorted(chosen))} · "
        f"{len(accounts)} accounts · {os.cpu_count()} CPUs · load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    nights = []
    caller = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-district-") as name, ExitStack() as stack:
        folder = Path(name)
        stack.enter_context(
            sandbox_process(
                persons=args.persons,
                communities=args.communities,
                seed=SEED,
                port=port,
                urls=urls.values(),
                cwd=folder,
            )
        )
        services = stack.enter_context(pool_services()) if {"pool", "kill"} & set(sides) else None
        try:
            for side in sides:
                data_dir = folder / side
                data_dir.mkdir()
                if side == "local":
                    env = side_env(data_dir, urls, scheduler_workers=str(args.threads))
                    nights.append(night(side, env, accounts, urls, data_dir))
                    continue
                postgres, redis = services  # type: ignore[misc]
                redis.flush()  # type: ignore[attr-defined]
                env = side_env(
                    data_dir,
                    urls,
                    executor="dramatiq",
                    database_url=postgres.create_database(),  # type: ignore[attr-defined]
                    redis_url=redis.url,  # type: ignore[attr-defined]
                    worker_heartbeat_s=str(HEARTBEAT_S),
                )
                kill = side == "kill"
                nights.append(night(side, env, accounts, urls, data_dir, workers=args.workers, kill=kill))
        finally:
            os.environ.clear()
            os.environ.update(caller)
    print()
    report(nights)
    print(f"\nload average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
