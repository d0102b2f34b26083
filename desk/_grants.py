"""Reveal grants: a reveal given once, with a reason, and carried by the page's URL for a few minutes.

A reveal form posts its reason; the desk keeps a grant (the SHA-256 of a random token, as sessions are
kept) bound to the user, the browser's session and the page, and sends the browser to the same page
with ``?grant=<token>``. So Back, Forward and F5 are plain GETs: nothing is posted again, and the
snapshot audits each page once, on the first read under the grant. The links of a revealed page (a
person, a household, the next page of a list) carry the grant too and are covered by it, so opening
one needs no second reason; any other page, user or session, or a grant past its time, shows masked.
A grant never widens scope: the reads under it still pass the user's community.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from desk._staff import DeskLogin, _digest, _seconds, _utc
from store import create_tables

GRANT = "grant"  # the query parameter that carries a grant's token
LIFETIME_S = 5 * 60  # long enough to read a list and open a few people, short enough to end by itself
# The links a revealed page's grant covers: people, households and a dataset's pages (its pager).
LINK = re.compile(r'href="(/(?:person|household|datasets)/[^"#]*)"')


class RevealGrant(SQLModel, table=True):
    """One reveal given with a reason, known by the SHA-256 of its token."""

    __tablename__ = "desk_reveal_grant"

    token_hash: str = Field(primary_key=True)
    user: str
    session_hash: str = Field(index=True)  # the desk session's token hash: the grant dies with it
    reason: str
    expires_at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))


class GrantedPage(SQLModel, table=True):
    """A page a grant covers (where it was given, or linked from a page revealed under it), and
    whether its revealed read has been audited yet."""

    __tablename__ = "desk_reveal_page"

    grant: str = Field(primary_key=True)  # RevealGrant.token_hash
    page: str = Field(primary_key=True)  # page_key()
    audited: bool = False


GRANTS: sa.Table = RevealGrant.__table__  # type: ignore[attr-defined]
PAGES: sa.Table = GrantedPage.__table__  # type: ignore[attr-defined]


def page_key(path: str, params: Iterable[tuple[str, str]]) -> str:
    """A page as grants know it, and a link to it: the quoted path and the sorted query, grant left out."""
    query = urlencode(sorted((k, v) for k, v in params if k != GRANT))
    return quote(path) + (f"?{query}" if query else "")


def link_key(href: str) -> str:
    """``page_key`` of a link as it stands in a page's HTML."""
    parts = urlsplit(html.unescape(href))
    return page_key(unquote(parts.path), parse_qsl(parts.query, keep_blank_values=True))


def with_grant(key: str, token: str) -> str:
    """The page of ``key`` under the grant of ``token``."""
    return f"{key}{'&' if '?' in key else '?'}{GRANT}={token}"


@dataclass(frozen=True)
class Granted:
    """A live grant as a page read uses it."""

    id: str  # the token's hash: names the grant (to the snapshot too) without being the token
    reason: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Shown:
    """What a page asked for under a grant shows of it: revealed until when, or that it has ended."""

    here: str  # page_key of this page: also its masked link (恢复脱敏显示)
    token: str = field(repr=False)
    granted: Granted | None  # None: the grant has ended, or was never this user's, session's or page's
    until: str = ""  # when it ends, as staff read it ("14:05 北京时间")


class Grants:
    """The desk's reveal grants, kept in the snapshot database beside the staff sessions."""

    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        create_tables(engine, [GRANTS, PAGES])

    def give(self, login: DeskLogin, page: str, reason: str) -> str:
        """A new grant of ``login`` for ``page`` (a ``page_key``), and its token."""
        token, now = secrets.token_urlsafe(32), self.clock()
        digest = _digest(token)
        with self.engine.begin() as conn:
            ended = sa.select(GRANTS.c.token_hash).where(GRANTS.c.expires_at <= _utc(now))
            conn.execute(sa.delete(PAGES).where(PAGES.c.grant.in_(ended)))
            conn.execute(sa.delete(GRANTS).where(GRANTS.c.expires_at <= _utc(now)))
            conn.execute(
                sa.insert(GRANTS).values(
                    token_hash=digest,
                    user=login.user.name,
                    session_hash=_digest(login.token),
                    reason=reason,
                    expires_at=_utc(now + LIFETIME_S),
                )
            )
            conn.execute(sa.insert(PAGES).values(grant=digest, page=page, audited=False))
        return token

    def find(self, token: str, login: DeskLogin, page: str) -> Granted | None:
        """The grant of ``token`` if it is live, ``login``'s (user and session) and covers ``page``."""
        digest = _digest(token)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(GRANTS)
                .join(PAGES, PAGES.c.grant == GRANTS.c.token_hash)
                .where(GRANTS.c.token_hash == digest, PAGES.c.page == page)
            ).first()
        if (
            row is None
            or row.user != login.user.name
            or row.session_hash != _digest(login.token)
            or _seconds(row.expires_at) <= self.clock()
        ):
            return None
        return Granted(id=digest, reason=row.reason, expires_at=_utc(_seconds(row.expires_at)))

    def first_read(self, granted: Granted, page: str) -> bool:
        """Is this the first revealed read of ``page`` under the grant (the one to audit)? One
        statement claims it, so two reads at once cannot both be first."""
        with self.engine.begin() as conn:
            claimed = conn.execute(
                sa.update(PAGES)
                .where(PAGES.c.grant == granted.id, PAGES.c.page == page, PAGES.c.audited.is_(False))
                .values(audited=True)
            )
        return claimed.rowcount == 1

    def carry(self, page: str, shown: Shown) -> str:
        """``page`` (its HTML) with the grant added to its links, which it now covers; a page whose
        grant has ended is left as it is. The link to the page itself is left bare: it is the way
        back to the masked page.
        """
        if shown.granted is None:
            return page
        covered: set[str] = set()

        def granted(match: re.Match[str]) -> str:
            key = link_key(match[1])
            if key == shown.here:
                return match[0]
            covered.add(key)
            return f'href="{html.escape(with_grant(key, shown.token))}"'

        carried = LINK.sub(granted, page)
        if covered:
            rows = [{"grant": shown.granted.id, "page": key, "audited": False} for key in covered]
            dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
            with self.engine.begin() as conn:
                conn.execute(dialect.insert(PAGES).values(rows).on_conflict_do_nothing())
        return carried
