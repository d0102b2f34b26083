"""The worker pool for tests: `harvest worker` processes on the test's settings, Redis's queue."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from sqlmodel import Session, select

from scheduler._dramatiq import QUEUE
from store import Run, Store


@contextmanager
def workers(count: int, log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` `harvest worker --threads 1` processes on this process's environment (HARVEST_*)."""
    harvest = str(Path(sys.executable).with_name("harvest"))
    log_dir.mkdir(parents=True, exist_ok=True)
    started = [
        subprocess.Popen(
            [harvest, "worker", "--threads", "1"],
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=(log_dir / f"worker-{n}.log").open("wb"),
        )
        for n in range(count)
    ]
    try:
        yield started
    finally:
        for process in started:
            process.kill()
            process.wait(10)


def runs(store: Store, account: str | None = None) -> list[Run]:
    with Session(store.engine) as session:
        found = session.exec(select(Run).order_by(Run.started_at))  # type: ignore[arg-type]
        return [run for run in found if account is None or run.account == account]


def queue_drained(redis_url: str) -> bool:
    """No message waits in the queue, and none is taken but un-acked by any worker."""
    client = redis.Redis.from_url(redis_url)
    try:
        taken = sum(client.scard(key) for key in client.keys(f"dramatiq:__acks__.*.{QUEUE}"))
        return client.llen(f"dramatiq:{QUEUE}") == 0 and taken == 0
    finally:
        client.close()
