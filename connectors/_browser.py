"""How we start Chromium: the system's own binary, headless, with no calls home, and how we
make sure none is left running after us.

``playwright install`` cannot download browsers here, so Playwright always drives the
executable named by ``HARVEST_CHROMIUM`` (Debian's ``chromium`` by default).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from loguru import logger
from playwright.async_api import Browser, Playwright

from settings import Settings

# Without the background-networking flags Chromium keeps dialling out to hosts this
# closed network refuses; --no-sandbox because robots often run as root on unit servers.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


class ChromiumMissing(RuntimeError):
    """The configured Chromium executable does not exist."""


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``BrowserType.launch`` built from the settings."""
    if not settings.chromium.is_file():
        raise ChromiumMissing(
            f"Chromium not found at {settings.chromium}: run `make test` (it installs Debian's "
            "chromium package) or set HARVEST_CHROMIUM to the browser's path."
        )
    return {
        "executable_path": str(settings.chromium),
        "headless": settings.headless,
        "args": list(CHROMIUM_ARGS),
    }


# Chromium ignores switches it does not know, so this one only labels the browser process
# with the pid of the Python process that owns it: a browser whose owner died (SIGKILL,
# OOM killer, power cut of a container) is found and ended by the next start.
OWNER_SWITCH = "--gridharvest-owner="


async def launch_browser(playwright: Playwright, settings: Settings) -> Browser:
    """The one Chromium of this process, labelled with our pid."""
    options = launch_options(settings)
    options["args"] = [*options["args"], f"{OWNER_SWITCH}{os.getpid()}"]
    return await playwright.chromium.launch(**options)


def owned_browsers(proc: Path = Path("/proc")) -> dict[int, int]:
    """Browser pid → owner pid, for every running Chromium one of our processes launched."""
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        for arg in args:
            if arg.startswith(OWNER_SWITCH.encode()):
                found[int(entry.name)] = int(arg[len(OWNER_SWITCH) :] or 0)
    return found


def sweep_orphan_browsers() -> list[int]:
    """End every Chromium whose owning process is dead; returns the pids ended."""
    ended = []
    for pid, owner in owned_browsers().items():
        if _alive(owner):
            continue
        try:
            # Playwright starts the browser as a process-group leader: its renderers go with it.
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        ended.append(pid)
    if ended:
        logger.warning("ended {} Chromium process(es) left behind by a killed run", len(ended))
    return ended


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
