"""What a failed run leaves for a person to look at: the page it last read, a screenshot, the traceback.

Evidence leaves the store like any record: every text is redacted of the run's secrets and has its
ID and phone numbers masked, the screenshot shows the masked page, and every file is readable by
its owner only. Cookie values a login brings are registered as secrets, so no log or file shows them.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from loguru import logger

from connectors import Session
from machine import tighten, write_private
from robots._walk import Walk
from store import scrub_text
from vault import redact, register_secret

MASKED_COOKIE_LENGTH = 8  # shorter values (flags like "1" or "zh") would mask ordinary words
TEXT_EVIDENCE = (".html", ".json", ".txt")


async def save_evidence(
    folder: Path,
    walk: Walk | None,
    session: Session | None,
    *,
    error: BaseException | None = None,
    files: dict[str, bytes] | None = None,
) -> None:
    """Save into ``folder`` what the robot last saw (HTML or JSON, a masked screenshot, the traceback)."""
    for name, data in (files or {}).items():  # the login page a failure brought along
        if name.endswith(TEXT_EVIDENCE):  # a page may echo what was typed into it
            data = masked_text(data.decode("utf-8", errors="replace")).encode("utf-8")
        write_private(folder / name, data)
    body = masked_text(walk.last_body) if walk is not None and walk.last_body else ""
    if walk is not None and body:
        suffix = ".json" if body.lstrip().startswith(("{", "[")) else ".html"
        write_private(folder / f"last-page{suffix}", body)
        write_private(folder / "last-url.txt", masked_text(walk.last_url) + "\n")
    if session is not None:
        try:
            page = await session.page()
            if body.lstrip().startswith("<"):  # the page as fetched, masked, rather than as it is now
                await page.set_content(body)
            await session.screenshot(page, folder / "screenshot.png")
        except Exception as exc:  # evidence is best effort: never hide the run's own failure
            logger.debug("no screenshot: {}", exc)
    if error is not None:
        text = masked_text("".join(traceback.format_exception(error)))
        write_private(folder / "traceback.txt", text)
    for path in folder.iterdir():  # the screenshot (and captcha images) are written by others
        tighten(path)


def mask_cookies(values: list[str]) -> None:
    """Register a login's cookie values as secrets, so logs and evidence mask them."""
    for value in values:
        if len(value) >= MASKED_COOKIE_LENGTH:
            register_secret(value)


def masked_text(text: str) -> str:
    return scrub_text(redact(text))
