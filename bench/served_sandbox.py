"""`harvest sandbox` in a process of its own for the benches that time whole processes against it."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HARVEST = Path(sys.executable).with_name("harvest")  # the venv's entry point, as an operator runs it
SANDBOX_START_S = 120.0


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 now (another process may yet take one)."""
    for _ in range(50):
        first = random.randrange(20_000, 60_000)
        sockets = []
        try:
            for port in range(first, first + count):
                sockets.append(socket.socket())
                sockets[-1].bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise SystemExit(f"no {count} consecutive free ports on 127.0.0.1")


@contextmanager
def sandbox_process(
    *, persons: int, communities: int, seed: int, port: int, urls: Iterable[str], cwd: Path
) -> Iterator[None]:
    """`harvest sandbox` serving that world from ``port`` on, until the block ends."""
    command = [str(HARVEST), "sandbox", "--port", str(port), "--persons", str(persons)]
    command += ["--communities", str(communities), "--seed", str(seed)]
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + SANDBOX_START_S
        for url in urls:
            while not answers(f"{url}/__sandbox__/switches"):
                if process.poll() is not None or time.monotonic() > deadline:
                    why = process.stderr.read().decode(errors="replace") if process.poll() is not None else ""
                    raise SystemExit(f"harvest sandbox did not start on {url}: {why.strip()}")
                time.sleep(0.2)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
