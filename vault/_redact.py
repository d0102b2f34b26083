"""Masking of secrets in text, and in everything loguru writes.

Every secret the vault hands out in a process is registered here; from then on ``redact``
replaces it with ``******``. A value is also registered in the forms it takes when it
travels (URL-encoded in a form body, escaped in JSON), because that is how a password
typed into a login form reaches a log line.

loguru formats exceptions late, in each handler, with the locals of every frame
(``diagnose=True`` is its default), so a patcher that only cleans ``record["message"]``
would still print the password from a traceback. ``install_log_redaction`` therefore also
cleans the final text of every handler, whatever its format, sink or serialization.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "******"

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None  # None while nothing is registered: redact() costs one check


def _forms(value: str) -> set[str]:
    """The value as typed, and as it appears URL-encoded or inside a JSON string."""
    return {
        value,
        quote(value, safe=""),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }


def register_secret(text: str) -> None:
    """Mask ``text`` (and its encoded forms) in everything ``redact`` sees from now on, in this process."""
    global _pattern
    if not text:
        return
    with _lock:
        fresh = _forms(text) - _secrets
        if not fresh:
            return
        _secrets.update(fresh)
        # Longest first, so a secret that contains another one is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``******``."""
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


def redact_record(record: Any) -> None:
    """A loguru patcher: mask secrets in the message and in string values bound with ``extra``."""
    if _pattern is None:
        return
    record["message"] = redact(record["message"])
    extra = record["extra"]
    for name, value in extra.items():
        if isinstance(value, str):
            extra[name] = redact(value)


def install_log_redaction() -> None:
    """Make loguru mask registered secrets in every record, exception text and traceback.

    Call once at startup, before any secret is read; calling again does nothing more. It
    sets loguru's patcher (``redact_record``; a program with its own patcher should call
    ``redact_record`` from it) and cleans the text each handler writes, which is where
    loguru puts the formatted traceback with its locals.
    """
    from loguru import _handler, logger

    logger.configure(patcher=redact_record)
    if getattr(_handler.Message, "_redacting", False):
        return
    # Handler.emit builds every line it writes as Message(formatted): the one place where
    # the message, the traceback with its locals, the extras and the JSON form meet.
    if not (isinstance(_handler.Message, type) and issubclass(_handler.Message, str)):
        raise RuntimeError(
            "这个版本的 loguru 写日志的方式变了：更新 vault/_redact.py，或换回原来的 loguru 版本"
        )

    class RedactedMessage(_handler.Message):  # type: ignore[misc, name-defined]
        __slots__ = ()
        _redacting = True

        def __new__(cls, text: str) -> RedactedMessage:
            return super().__new__(cls, redact(text))

    _handler.Message = RedactedMessage
