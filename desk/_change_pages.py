"""The 本期变动 page: what changed in a community since a date, grid by grid, masked.

Staff see their own community; admins pick one. The page's filters are its date, its grid and (for
admins) its community: any other parameter is refused, as the dataset pages refuse one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from desk import _views as views
from desk._app import Desk, Refused, current_login, desk_of
from desk._digest import KINDS
from desk._links import Sealer
from desk._staff import DeskLogin
from machine import local_time, utc_now, zone
from store import Changed, GridChanges, changes_since

router = APIRouter()
Login = Annotated[DeskLogin, Depends(current_login)]
DEFAULT_DAYS = 7
LIST_LIMIT = 200  # items of one kind in one grid; a longer list is narrowed by a later date
FILTER_WORDS = {"since": "起始日期", "grid": "网格", "community": "社区"}


@dataclass(frozen=True)
class Item:
    """One change as the page shows it."""

    title: str  # the dataset's
    who: str  # masked name, else the household
    when: str
    fields: list[tuple[str, str, str]]  # label, before, after (masked)
    tags: tuple[str, ...]
    person: str | None  # sealed link token
    household: str | None


@router.get("/changes", response_class=HTMLResponse)
def changes(request: Request, login: Login) -> Response:
    desk = desk_of(request)
    params = request.query_params
    offered = ["since", "grid", *(["community"] if login.user.is_admin else [])]
    for name in params:
        if name not in offered:
            have = "、".join(FILTER_WORDS[o] for o in offered)
            raise Refused(
                400, f"本页没有筛选条件 {name[:40]!r}：本页可以按 {have} 筛选。请从页面上的筛选框选择后重试。"
            )
    scopes = desk.scopes()
    scope = login.user.scope
    if login.user.is_admin:
        scope = params.get("community") or (scopes[0] if scopes else None)
        if scope is not None and scope not in scopes:
            raise Refused(400, f"没有社区 {scope[:40]!r} 的记录：请从「社区」下拉框里选。")
    today = local_time(utc_now(), desk.settings.timezone).date()
    since = _since(params.get("since", ""), today)
    grid = params.get("grid", "").strip()[:50] or None
    catalog = desk.views()
    shown: list[tuple[str | None, dict[str, list[Item]], dict[str, int]]] = []
    initial = 0
    if scope is not None:
        moment = dt.datetime.combine(since, dt.time(), zone(desk.settings.timezone))
        found = changes_since(desk.snapshot, moment, scope=scope, grid=grid)
        initial = found.initial
        grids = [found.of(grid)] if grid else list(found.grids.values())
        shown = [_grid(g, catalog, desk) for g in grids]
    context = {
        "since": since.isoformat(),
        "today": today.isoformat(),
        "grid": grid,
        "scope": scope,
        "scopes": scopes if login.user.is_admin else [],
        "grid_choices": _grid_choices(desk, catalog, scope),
        "grids": shown,
        "kinds": KINDS,
        "initial": initial,
        "catalog": catalog,
    }
    return desk.render(request, "changes.html", context, login=login)


def _since(text: str, today: dt.date) -> dt.date:
    if not text.strip():
        return today - dt.timedelta(days=DEFAULT_DAYS)
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        example = today.isoformat()
        raise Refused(400, f"起始日期须写成 YYYY-MM-DD（如 {example}），不是 {text[:20]!r}。") from None


def _grid(
    found: GridChanges, catalog: dict[str, views.DatasetView], desk: Desk
) -> tuple[str | None, dict[str, list[Item]], dict[str, int]]:
    lists = {kind: getattr(found, kind) for kind, _ in KINDS}
    items = {kind: [_item(c, catalog, desk) for c in changed[:LIST_LIMIT]] for kind, changed in lists.items()}
    return found.grid, items, {kind: len(changed) for kind, changed in lists.items()}


def _item(change: Changed, catalog: dict[str, views.DatasetView], desk: Desk) -> Item:
    view = catalog.get(change.dataset)
    return Item(
        title=view.title if view else change.dataset,
        who=change.name or (f"户号 {change.household}" if change.household else ""),
        when=views.local_time(change.at, desk.settings.timezone),
        fields=[(f.label, views.text(f.before), views.text(f.after)) for f in change.fields],
        tags=change.new_tags,
        # A gone record has no page to open: the person's records left with it.
        person=_sealed(desk.sealer, change.ref) if change.kind != "gone" else None,
        household=change.household,
    )


def _sealed(sealer: Sealer, ref: str | None) -> str | None:
    return sealer.seal(ref) if ref else None


def _grid_choices(desk: Desk, catalog: dict[str, views.DatasetView], scope: str | None) -> list[str]:
    if scope is None:
        return []
    found: set[str] = set()
    for view in catalog.values():
        field = view.field("grid")
        if field:
            found.update(desk.distinct(view.name, field, scope))
    return sorted(found)
