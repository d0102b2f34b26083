"""Executors: what runs the requests the scheduler hands out. ``LocalExecutor`` runs them in threads
of this process (one machine); the pool's executor (``scheduler._dramatiq``) sends them over Redis
to `harvest worker` processes on any machine."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from scheduler._runs import JobRuns, RunRequest


class Executor(Protocol):
    """Takes run requests from the scheduler; ``stop`` lets running ones finish for ``timeout`` seconds."""

    def submit(self, request: RunRequest) -> None: ...

    def stop(self, timeout: float) -> None: ...


class LocalExecutor:
    """Runs requests in ``workers`` threads of this process, each run in its own event loop."""

    def __init__(self, runs: JobRuns, workers: int) -> None:
        self.runs = runs
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="harvest-run")
        self._guard = threading.Lock()
        self._executing = 0  # requests between their start and their end

    def submit(self, request: RunRequest) -> None:
        with self._guard:
            self._executing += 1
        self._pool.submit(self._execute, request)

    def _execute(self, request: RunRequest) -> None:
        try:  # the account's lease and the system's slot are the run's own (Harvester.run), as for every run
            self.runs.execute(request)
        finally:
            with self._guard:
                self._executing -= 1

    def stop(self, timeout: float) -> None:
        self.runs.stopping.set()
        deadline = time.monotonic() + timeout
        while self._executing and time.monotonic() < deadline:
            time.sleep(0.1)
        self.runs.cancel_all()
        self._pool.shutdown(wait=True)
