"""Communities by their Chinese names, and a staff user's community checked against those known.

An account's scope is a code (``donghu``) chosen when the account was registered; staff know their
community as 东湖社区. The unit declares the names once (``HARVEST_COMMUNITIES``); the codes known are
those declared and those the snapshot holds records of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Places:
    """Community names by code (the ``communities`` setting)."""

    names: Mapping[str, str] = field(default_factory=dict)

    def community(self, code: str | None) -> str:
        """A community as staff call it: its declared name, else its code; every community for None."""
        if code is None:
            return "全部社区"
        return self.names.get(code) or code

    def labelled(self, code: str) -> str:
        """A community for IT staff: its name and its code (东湖社区（donghu）), or the code alone."""
        return f"{self.names[code]}（{code}）" if self.names.get(code) else code

    def resolve(self, given: str, harvested: Iterable[str]) -> str:
        """The community code that ``given`` means: a known code, a declared name, or a name without its
        社区 (东湖 for 东湖社区). A ValueError names the known ones when it means none; when nothing is
        known yet (nothing harvested, none declared) the code is taken as given."""
        given = given.strip()
        known = dict.fromkeys([*harvested, *self.names])
        if not known or given in known:
            return given
        by_name = [code for code, name in self.names.items() if given in (name, name.removesuffix("社区"))]
        if len(by_name) == 1:
            return by_name[0]
        listed = "、".join(f"{code}（{self.names[code]}）" if code in self.names else code for code in known)
        raise ValueError(
            f"没有社区 {given!r}：已知的社区有 {listed}；用其中一个代号或名称，"
            "或先在 HARVEST_COMMUNITIES 里声明它的名称"
        )
