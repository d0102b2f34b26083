"""The demo accounts of the sandbox: one per system and community, like a unit's real logins."""

from __future__ import annotations

import random
import string
from dataclasses import asdict, dataclass
from typing import Protocol


class Enrolls(Protocol):
    """What takes a demo account in: ``vault.Vault`` (the sandbox does not import the vault)."""

    def add(self, system: str, account: str, *, username: str, password: str, scope: str) -> object: ...


@dataclass(frozen=True)
class DemoAccount:
    system: str
    account: str
    username: str
    password: str
    scope: str
    scope_name: str

    def __repr__(self) -> str:
        # Even sandbox passwords stay out of logs and tracebacks: habits carry over.
        return f"DemoAccount({self.system}/{self.account}, username={self.username!r})"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def enroll(self, vault: Enrolls) -> None:
        """Add this account to ``vault``, as a unit adds its real ones."""
        vault.add(self.system, self.account, username=self.username, password=self.password, scope=self.scope)


def demo_password(seed: int, system: str, account: str) -> str:
    """A deterministic, realistic-looking password (mixed case, digits, a symbol)."""
    rng = random.Random(f"{seed}/{system}/{account}")
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(8))
    return f"{rng.choice(string.ascii_uppercase)}{body}{rng.choice('!#%*+-')}{rng.randint(10, 99)}"


def demo_accounts(
    seed: int, system: str, prefix: str, communities: list[tuple[str, str]]
) -> list[DemoAccount]:
    """One account per ``(code, name)`` community, named ``{prefix}_{code}``."""
    return [
        DemoAccount(
            system=system,
            account=code,
            username=f"{prefix}_{code}",
            password=demo_password(seed, system, code),
            scope=code,
            scope_name=name,
        )
        for code, name in communities
    ]
