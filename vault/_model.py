"""What the vault hands out: account facts anyone may see, and secrets that only say their name."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from vault._redact import register_secret

Status = Literal["ok", "parked"]


@dataclass(frozen=True)
class AccountInfo:
    """One account as everyone may see it: who, where, whether it is usable; never a secret."""

    system: str
    account: str
    username: str
    scope: str
    notes: str
    status: Status
    parked_kind: str | None
    parked_message: str | None
    parked_at: dt.datetime | None
    last_used: dt.datetime | None
    has_totp: bool
    unconfirmed_logins: int = 0  # password submissions the system left unanswered since the last good login
    logs_in_by: Literal["browser", "http"] = "browser"  # http: a browser login showed how the form posts

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 text."""
        return {
            name: value.isoformat() if isinstance(value, dt.datetime) else value
            for name, value in self.__dict__.items()
        }


class Secret:
    """One secret string. Its repr and str show only its name, so it can be logged, printed or
    put in an exception without leaking; ``reveal()`` is the one way to the value.

    Creating one registers the value for redaction. It refuses to be pickled, so it never
    rides along into a task queue or a worker process: those ask the vault themselves.
    """

    __slots__ = ("_name", "_value")

    def __init__(self, name: str, value: str) -> None:
        register_secret(value)
        self._name = name
        self._value = value

    @property
    def name(self) -> str:
        return self._name

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self._name!r})"

    __str__ = __repr__

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        raise TypeError(f"{self!r} 不能被 pickle：需要它的进程请自己向保险库取")


@dataclass(frozen=True)
class Secrets:
    """An account's secrets for one run; the TOTP seed only where the account has one."""

    password: Secret
    totp_seed: Secret | None
