"""Logging of runs: a human line per event on the console, optionally JSON lines in the data dir.

Every line carries the run id (the first 8 characters), every secret the vault handed
out is masked in messages and tracebacks, and tracebacks never print local variables
(they could hold a password on its way into a form).
"""

from __future__ import annotations

import sys
from typing import TextIO

from loguru import logger

from machine import open_private, private_dir
from settings import Settings
from vault import install_log_redaction

CONSOLE_FORMAT = (
    "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> <cyan>{extra[run]: <8}</cyan> {message}"
)


def _stderr(line: str) -> None:
    # Looked up at each line, not once: whoever swapped sys.stderr since (a test runner, a daemon
    # detaching) may have closed the one of the call.
    sys.stderr.write(line)


def configure_logging(settings: Settings, *, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Console (and JSON file) sinks for this process; safe to call again."""
    logger.remove()
    logger.configure(extra={"run": "-"})
    logger.add(
        stream or _stderr,
        level=level,
        format=CONSOLE_FORMAT,
        backtrace=False,
        diagnose=False,
        colorize=None if stream else sys.stderr.isatty(),
    )
    if settings.log_json:
        path = private_dir(settings.data_dir / "logs", within=settings.data_dir) / "harvest.jsonl"
        # Log lines carry masked records and run details: every file of the rotation is made 0600.
        logger.add(
            path,
            level="DEBUG",
            serialize=True,
            rotation="20 MB",
            retention=10,
            diagnose=False,
            opener=open_private,
        )
    install_log_redaction()
