"""How a run can fail, said in the type: a person must act, or the system should be tried later.

    HarvestFailure                    kind            exit code
    ├── NeedsPerson                   (never retried automatically)
    │   ├── BadCredentials            bad_credentials 3   parked: the system rejected the password
    │   ├── AccountLocked             locked          3   parked: the system says the account is locked
    │   ├── NeedsHuman                needs_human     4   a captcha or a login step only a person can do
    │   │   ├── LoginUnrecognised     needs_human     4   parked: a password was spent, the answer unknown
    │   │   ├── LoginUnconfirmed      needs_human     4   parked: unanswered logins leave no margin
    │   │   └── SessionTaken          needs_human     4   someone else keeps logging in with the account
    │   └── LayoutChanged             layout_changed  5   the pages no longer look as the robot expects
    │       └── LoginFormMissing      layout_changed  5   no login form where the system's declaration says
    └── SystemUnavailable             system_unavailable 6  down, slow or refusing: retry later

Each message is one line that tells the operator what to do. ``parks`` says whether the
account must not be used again until a person acts. A session that ends mid-walk is not a
failure: the session logs in again once and the walk resumes where it stopped.
"""

from __future__ import annotations

from typing import ClassVar


class HarvestFailure(Exception):
    """A run that cannot finish; ``kind`` goes into the run record, ``exit_code`` to the shell."""

    kind: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1
    parks: ClassVar[bool] = False  # the account is parked: its password must not be sent again

    def __init__(self, message: str = "", *, evidence: dict[str, bytes] | None = None) -> None:
        super().__init__(message)
        self.evidence = evidence or {}  # files for the run's folder: the login page as it was


class NeedsPerson(HarvestFailure):
    """Retrying cannot help: the scheduler alerts a person and waits."""


class BadCredentials(NeedsPerson):
    kind = "bad_credentials"
    exit_code = 3
    parks = True


class AccountLocked(NeedsPerson):
    kind = "locked"
    exit_code = 3
    parks = True


class NeedsHuman(NeedsPerson):
    kind = "needs_human"
    exit_code = 4


class LoginUnrecognised(NeedsHuman):
    """A password went to the system and what came back proves neither success nor a captcha miss."""

    parks = True


class LoginUnconfirmed(NeedsHuman):
    """Unanswered submissions (5xx, drops) since the last good login leave no room for one more."""

    parks = True


class SessionTaken(NeedsHuman):
    """Logged out again soon after logging in again: someone else is using the account."""


class LayoutChanged(NeedsPerson):
    kind = "layout_changed"
    exit_code = 5


class LoginFormMissing(LayoutChanged):
    """The login page has no password field (or not the declared inputs): nothing was sent."""


class SystemUnavailable(HarvestFailure):
    kind = "system_unavailable"
    exit_code = 6


EXIT_CODES: dict[str, int] = {
    cls.kind: cls.exit_code
    for cls in (HarvestFailure, BadCredentials, AccountLocked, NeedsHuman, LayoutChanged, SystemUnavailable)
}
