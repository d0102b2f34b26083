"""How a run can fail, said in the type: a person must act, the system should be tried later,
this machine needs room, or the account is busy with another run.

    HarvestFailure                    kind               exit  then
    ├── NeedsPerson                                            alert once; the job waits for a person
    │   ├── BadCredentials            bad_credentials    3     parked: the system rejected the password
    │   ├── AccountLocked             locked             3     parked: the system says the account is locked
    │   ├── NeedsHuman                needs_human        4     a captcha or a login step only a person can do
    │   │   ├── LoginUnrecognised     needs_human        4     parked: a password spent, the answer unknown
    │   │   ├── LoginUnconfirmed      needs_human        4     parked: unanswered logins leave no margin
    │   │   └── SessionTaken          needs_human        4     someone else keeps logging in with the account
    │   └── LayoutChanged             layout_changed     5     the pages no longer look as the robot expects
    │       └── LoginFormMissing      layout_changed     5     no login form where the declaration says
    ├── SystemUnavailable             system_unavailable 6     retried later; alert when retries run out
    │   └── SessionRenewed            system_unavailable 6     a form posted for an ended session: re-walked
    ├── LocalFailure                                           alert once; the next scheduled run tries again
    │   └── DiskFull                  disk_full          7     no space left for the database, vault or logs
    └── AccountBusy                   account_busy       8     another run holds the account: retried

A ``HarvestFailure`` raised as such (kind ``error``, exit 1) is a robot's own failure: like
``NeedsPerson``, one alert and the job waits. ``AccountBusy`` is no failure of the system or the
data: the run never started. The scheduler reads what to do from ``retried``, ``alerted`` and
``waits``; run records and alerts carry ``kind``, and ``failure_class`` turns a kind back into
its class. The store's own refusals (``store.StoreError``) carry kinds of this tree too.

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
    retried: ClassVar[bool] = False  # the scheduler tries again by itself, with growing delays
    alerted: ClassVar[bool] = True  # a person is told, once, when it is not (or no longer) retried
    waits: ClassVar[bool] = True  # the job does not run again until a person has acted

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
    retried = True
    waits = False


class SessionRenewed(SystemUnavailable):
    """A form post (an ASP.NET postback) whose session ended and was logged in again.

    Its view state belonged to the ended session, so it is not sent again as it was: the walk
    goes back to the list's first page and follows it to where it was.
    """


class LocalFailure(HarvestFailure):
    """This machine cannot go on (no disk space…): a person frees it; the next scheduled run tries again."""

    waits = False


class DiskFull(LocalFailure):
    kind = "disk_full"
    exit_code = 7


class AccountBusy(HarvestFailure):
    """Another run (by hand, the scheduler, a worker) held the account for longer than a run waits."""

    kind = "account_busy"
    exit_code = 8
    retried = True
    alerted = False
    waits = False


def failure_class(kind: str | None) -> type[HarvestFailure]:
    """The class a run record's ``kind`` stands for (the shallowest one of that kind); unknown: ``error``."""
    pending: list[type[HarvestFailure]] = [HarvestFailure]
    while pending:  # breadth first, so NeedsHuman names needs_human rather than one of its subclasses
        cls = pending.pop(0)
        if cls.kind == kind:
            return cls
        pending.extend(cls.__subclasses__())
    return HarvestFailure
