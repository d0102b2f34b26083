"""What a walk reads through: ``Fetcher``, the one small protocol between a robot and a system.

``connectors.Session`` implements it with the logged-in browser context (polite, retried, logged
in again when the system sends us back to its login page); a recording wraps it, and a replay
or a test's fake implements it without a network, so a ``Walk`` can be built by hand.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from connectors._polite import Polite
    from connectors._system import System


@dataclass(frozen=True)
class Fetched:
    """A response read without rendering: where it ended, its status, headers and body."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @cached_property  # read for the evidence note and again for parsing: decode once
    def text(self) -> str:
        return self.body.decode(_charset(self.headers) or _meta_charset(self.body), errors="replace")


class Fetcher(Protocol):
    """Reads a system's pages without rendering them: a GET, or with ``form`` an HTML form POST."""

    @property
    def system(self) -> System: ...

    @property
    def polite(self) -> Polite: ...

    async def fetch(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        form: Mapping[str, str] | None = None,
        what: str = "",
    ) -> Fetched: ...


def _charset(headers: Mapping[str, str]) -> str | None:
    content_type = headers.get("content-type", "")
    for part in content_type.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return _codec(value.strip('"'))
    return None


META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_-]+)""", re.IGNORECASE)


def _meta_charset(body: bytes) -> str:
    """The charset a page declares in its ``<meta>`` (old IIS servers send ``text/html`` bare)."""
    match = META_CHARSET.search(body[:4096])
    return _codec(match.group(1).decode("ascii")) if match else "utf-8"


def _codec(name: str) -> str:
    """GB2312 and GBK pages use characters only their superset GB18030 decodes; unknown names: UTF-8."""
    name = name.lower()
    if name in ("gb2312", "gbk", "gb_2312-80", "x-gbk", "cp936"):
        return "gb18030"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"
