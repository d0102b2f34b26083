"""How we start Chromium: the system's own binary, headless, with no calls home, and how we
make sure none is left running after us, nor its temp folders.

``playwright install`` cannot download browsers here, so Playwright always drives the
executable named by ``HARVEST_CHROMIUM`` (Debian's ``chromium`` by default).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from playwright.async_api import Browser, Playwright, async_playwright

from machine import pid_alive

if TYPE_CHECKING:
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
            f"找不到 Chromium（{settings.chromium}）：运行 `make test`（它会安装 Debian 的 chromium 包），"
            "或把 HARVEST_CHROMIUM 设为浏览器的路径"
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


class Chromium:
    """The process's Chromium, running only while a session needs a browser.

    A session needs one to log in and to render pages; between logins a fast-path walk reads
    through Playwright's own HTTP client, which needs no browser. Chromium is most of a run's
    memory, so ``Chromium(playwright, settings)`` starts it on the first ``acquire`` and closes it
    when the last holder releases it (a re-login starts it again). ``Chromium.around(browser)``
    is a browser someone else owns (tests, ``harvest new``): never closed here, and sessions keep
    their browser context in it throughout.
    """

    def __init__(self, playwright: Playwright | None, settings: Settings | None = None) -> None:
        if settings is not None:
            launch_options(settings)  # a missing Chromium is said before any run starts
        self.playwright = playwright
        self._settings = settings
        self._browser: Browser | None = None
        self._holders = 0
        self.launches = 0  # how often this process started it: once per login on the fast path
        self._lock = asyncio.Lock()
        self._starting: asyncio.Task[Browser] | None = None  # a warm start not yet taken
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    def around(cls, browser: Browser) -> Chromium:
        chromium = cls(None)
        chromium._browser = browser
        return chromium

    @property
    def on_demand(self) -> bool:
        """Whether sessions give the browser back between logins (they read by HTTP meanwhile)."""
        return self._settings is not None

    @property
    def running(self) -> bool:
        return self._browser is not None

    def warm(self) -> None:
        """Start Chromium now, for a login that is likely to come; ``idle()`` closes it if none came."""
        if self.on_demand and self._browser is None and self._starting is None:
            self._starting = asyncio.create_task(self._launch())

    async def acquire(self) -> Browser:
        async with self._lock:
            if self._browser is None:
                starting, self._starting = self._starting, None
                self._browser = await (starting or self._launch())
            self._holders += 1
            return self._browser

    async def release(self) -> None:
        async with self._lock:
            self._holders = max(0, self._holders - 1)
            await self._unheld()

    async def idle(self) -> None:
        """Close the browser if nobody holds it (warmed for a login that a saved session spared)."""
        async with self._lock:
            await self._unheld()

    async def close(self) -> None:
        """Close the browser if it is ours, whoever still holds it."""
        async with self._lock:
            self._holders = 0
            await self._unheld()
            await asyncio.gather(*self._closing)

    async def _launch(self) -> Browser:
        assert self.playwright is not None and self._settings is not None
        browser = await launch_browser(self.playwright, self._settings)
        self.launches += 1
        logger.debug("Chromium started")
        return browser

    async def _unheld(self) -> None:
        """With no holder, close the browser (in the background: a walk after a login need not wait)."""
        if self._holders or not self.on_demand:
            return
        starting, self._starting = self._starting, None
        if starting is not None:  # a warm start nobody took: let it finish, then close it
            with contextlib.suppress(Exception):
                self._browser = await starting
        browser, self._browser = self._browser, None
        if browser is not None:
            closing = asyncio.create_task(browser.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            logger.debug("Chromium closing: no session needs it until the next login")


# Playwright's driver makes a Chromium profile (playwright_chromiumdev_profile-*) and an artifacts
# folder (playwright-artifacts-*) in its TMPDIR for every browser, and removes them only when the
# browser closes: a killed run leaves them. So the driver of each process gets a temp root of its
# own, named with the process's pid, and a root whose process is dead is swept with its browsers.
TEMP_PREFIX = "gridharvest-"
_TEMP_ROOT = re.compile(rf"{TEMP_PREFIX}(\d+)-")
_roots: dict[int, Path] = {}  # pid -> its root: a forked child makes its own
_driver_env = threading.Lock()  # TMPDIR is process-wide while a driver starts


def temp_root() -> Path:
    """This process's temp root (``<system tmp>/gridharvest-<pid>-…``, 0700), made on first use."""
    pid = os.getpid()
    if pid not in _roots or not _roots[pid].is_dir():  # a tmp cleaner may have taken it
        _roots[pid] = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{pid}-"))
        atexit.register(shutil.rmtree, _roots[pid], ignore_errors=True)
    return _roots[pid]


@contextlib.contextmanager
def _tmpdir(root: Path) -> Iterator[None]:
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(root)
    try:
        yield
    finally:
        if before is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = before


async def start_playwright() -> Playwright:
    """Playwright with its driver (and so Chromium) keeping temp files in this process's temp root.

    The driver reads TMPDIR from the environment when it is spawned, and Python's ``tempfile`` has
    cached the system's folder by then (``temp_root`` asked it), so only processes started in this
    short window see the root; the lock keeps two starts in this process from restoring each other's.
    """
    root = temp_root()
    await asyncio.to_thread(_driver_env.acquire)  # a thread: another start on this loop must not block it
    try:
        with _tmpdir(root):
            return await async_playwright().start()
    finally:
        _driver_env.release()


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
    """End every Chromium whose owning process is dead, then remove the temp roots of dead
    processes; returns the pids ended."""
    ended = []
    for pid, owner in owned_browsers().items():
        if pid_alive(owner):
            continue
        try:
            # Playwright starts the browser as a process-group leader: its renderers go with it.
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        ended.append(pid)
    if ended:
        logger.warning("已结束 {} 个被终止的运行留下的 Chromium 进程", len(ended))
    sweep_temp_roots()
    return ended


def sweep_temp_roots(tmp: Path | None = None) -> list[Path]:
    """Remove the temp roots (in ``tmp``, the system's by default) whose process is dead and that
    belong to our user; a live process's root is never touched. Returns the roots removed."""
    removed = []
    for root in Path(tmp or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        owner = _TEMP_ROOT.match(root.name)
        try:
            info = root.lstat()
        except FileNotFoundError:  # another process swept it meanwhile
            continue
        if owner is None or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue  # not a root of ours: a link, or another user's
        if pid_alive(int(owner[1])):
            continue
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    if removed:
        logger.warning("已清理 {} 个被终止的运行留下的浏览器临时目录", len(removed))
    return removed
