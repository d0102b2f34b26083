"""How a run can fail, said in the type: a person must act, or the system should be tried later.

    HarvestFailure                    kind            exit code
    ├── NeedsPerson                   (never retried automatically)
    │   ├── BadCredentials            bad_credentials 3   the account is parked until a person updates it
    │   ├── AccountLocked             locked          3   the account is parked until a person updates it
    │   ├── NeedsHuman                needs_human     4   a captcha or a login step only a person can do
    │   └── LayoutChanged             layout_changed  5   the pages no longer look as the robot expects
    └── SystemUnavailable             system_unavailable 6  down, slow or refusing: retry later

Each message is one line that tells the operator what to do. A session that ends mid-walk
is not a failure: the session logs in again once and the walk resumes where it stopped.
"""

from __future__ import annotations

from typing import ClassVar


class HarvestFailure(Exception):
    """A run that cannot finish; ``kind`` goes into the run record, ``exit_code`` to the shell."""

    kind: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1


class NeedsPerson(HarvestFailure):
    """Retrying cannot help: the scheduler alerts a person and waits."""


class BadCredentials(NeedsPerson):
    kind = "bad_credentials"
    exit_code = 3


class AccountLocked(NeedsPerson):
    kind = "locked"
    exit_code = 3


class NeedsHuman(NeedsPerson):
    kind = "needs_human"
    exit_code = 4


class LayoutChanged(NeedsPerson):
    kind = "layout_changed"
    exit_code = 5


class SystemUnavailable(HarvestFailure):
    kind = "system_unavailable"
    exit_code = 6


EXIT_CODES: dict[str, int] = {
    cls.kind: cls.exit_code
    for cls in (HarvestFailure, BadCredentials, AccountLocked, NeedsHuman, LayoutChanged, SystemUnavailable)
}
