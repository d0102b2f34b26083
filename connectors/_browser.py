"""How we start Chromium: the system's own binary, headless, with no calls home.

``playwright install`` cannot download browsers here, so Playwright always drives the
executable named by ``HARVEST_CHROMIUM`` (Debian's ``chromium`` by default).
"""

from __future__ import annotations

from typing import Any

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
