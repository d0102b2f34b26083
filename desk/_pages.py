"""The desk's pages: search, a person (一人一档), a household, datasets, export and the audit.

Every read passes the user's scope to the snapshot, so a staff member's community bounds what any
URL, form field or export parameter can reach. Pages come masked; the same URL POSTed with a reason
(显示完整信息) comes revealed, and the snapshot writes that to the audit table.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask

from desk import _views as views
from desk._app import NOT_FOUND, Desk, Refused, check_csrf, current_login, desk_of, scope_of
from desk._staff import DeskLogin
from machine import utc_now
from store import Access, RevealRefused, is_number_search
from store._masking import MASKED_ROLES, mask_value

router = APIRouter()
PAGE_SIZE = 50
EXPORT_LIMIT = 100_000  # rows in one export; a bigger list is narrowed by filters first
Login = Annotated[DeskLogin, Depends(current_login)]
Text = Annotated[str, Query(max_length=50)]
Reason = Annotated[str, Form(max_length=200)]
Csrf = Annotated[str, Form(max_length=100)]
# Masked searches for a number (ID, phone) a staff member may make in a window. A masked search never
# matches a number's hidden digits, so this is the second wall: guessing whole numbers, one search each.
# A day's honest lookups come nowhere near it; revealed searches need a reason and are not counted.
NUMBER_SEARCHES = 60
NUMBER_WINDOW = dt.timedelta(minutes=10)


def _reveal(login: DeskLogin, csrf: str, reason: str) -> Access:
    """A reveal: the form's CSRF token checked and its reason required."""
    check_csrf(login.csrf, csrf)
    access = Access(actor=login.user.name, reveal=True, reason=reason.strip())
    try:
        access.check()
    except RevealRefused as exc:
        raise Refused(400, "显示完整信息需要填写理由（至少两个字）。") from exc
    return access


def _viewing(request: Request, login: Login, csrf: Csrf = "", reason: Reason = "") -> Access:
    """How a page shows its records: masked for a GET; the same URL POSTed is a reveal."""
    return Access(actor=login.user.name) if request.method == "GET" else _reveal(login, csrf, reason)


Viewing = Annotated[Access, Depends(_viewing)]
SHOWN = ["GET", "POST"]  # a page's methods: GET masked, POST revealed with a reason


def _revealed(access: Access) -> dict[str, Any]:
    return {"revealed": access.reveal, "reason": access.reason}


def _limit_number_searches(desk: Desk, access: Access, text: str) -> None:
    """Refuse a masked search for a number past NUMBER_SEARCHES in NUMBER_WINDOW (HTTP 429).

    The audit table counts them (each is written there), so the limit holds across restarts and
    across desk processes sharing one database.
    """
    if access.reveal or not is_number_search(text):
        return
    if desk.snapshot.number_searches(access.actor, utc_now() - NUMBER_WINDOW) >= NUMBER_SEARCHES:
        minutes = int(NUMBER_WINDOW.total_seconds() // 60)
        raise Refused(
            429,
            f"按号码检索过于频繁：每 {minutes} 分钟最多 {NUMBER_SEARCHES} 次，请稍后再试；"
            "核对完整号码请在数据页填写理由后显示完整信息。",
        )


# -- search ------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def search(request: Request, login: Login, q: Text = "") -> Response:
    desk = desk_of(request)
    catalog = desk.views()
    query = q.strip()
    access = Access(actor=login.user.name)
    _limit_number_searches(desk, access, query)
    result = (
        views.search(desk.snapshot, catalog, query, scope_of(login), desk.sealer, access) if query else None
    )
    return desk.render(
        request, "search.html", {"q": query, "result": result, "catalog": catalog}, login=login
    )


# -- one person ----------------------------------------------------------------------------------


@router.api_route("/person/{token}", methods=SHOWN, response_class=HTMLResponse)
def person(request: Request, token: str, login: Login, access: Viewing) -> Response:
    desk = desk_of(request)
    id_number = desk.sealer.open(token)
    if id_number is None:
        raise Refused(404, NOT_FOUND)
    catalog = desk.views()
    found = desk.snapshot.person(id_number, scope=scope_of(login), access=access)
    if not found:
        raise Refused(404, NOT_FOUND)
    records = [
        card for name, frame in found.items() for card in views.cards(catalog[name], frame, desk.sealer)
    ]
    summary = views.PersonHit(token=token)
    for name, frame in found.items():
        views.merge_into(summary, catalog[name], frame.iloc[0].to_dict())
    history = desk.snapshot.history(id_number, scope=scope_of(login), access=access)
    changes = [
        {
            "at": views.text(row["at"]),
            "title": catalog[row["dataset"]].title if row["dataset"] in catalog else row["dataset"],
            "kind": CHANGE_KINDS.get(row["kind"], row["kind"]),
            "field": row["field"],
            "before": views.text(row["before"]),
            "after": views.text(row["after"]),
        }
        for row in history.to_dict(orient="records")
    ]
    context = {"person": summary, "records": records, "changes": changes, "catalog": catalog} | _revealed(
        access
    )
    return desk.render(request, "person.html", context, login=login)


CHANGE_KINDS = {"new": "新增", "changed": "变更", "gone": "注销/迁出", "back": "恢复"}


# -- one household -------------------------------------------------------------------------------


@router.api_route("/household/{number}", methods=SHOWN, response_class=HTMLResponse)
def household(request: Request, number: str, login: Login, access: Viewing) -> Response:
    desk = desk_of(request)
    catalog = desk.views()
    frame = desk.snapshot.household(number[:64], scope=scope_of(login), refs=True, access=access)
    if frame.empty:
        raise Refused(404, NOT_FOUND)
    groups = []
    for name, rows in frame.groupby("dataset", sort=False):
        view = catalog[str(name)]
        groups.append({"title": view.title, "cards": views.cards(view, rows, desk.sealer)})
    context = {"number": number, "groups": groups, "catalog": catalog} | _revealed(access)
    return desk.render(request, "household.html", context, login=login)


# -- datasets ------------------------------------------------------------------------------------


@router.get("/datasets", response_class=HTMLResponse)
def datasets(request: Request, login: Login) -> Response:
    desk = desk_of(request)
    catalog = desk.views()
    counts = {name: desk.snapshot.count(name, scope=scope_of(login)) for name in catalog}
    return desk.render(request, "datasets.html", {"catalog": catalog, "counts": counts}, login=login)


class Filters:
    """A dataset page's filters, read from its query string (GET, the reveal POST and the export alike)."""

    def __init__(
        self,
        view: views.DatasetView,
        catalog: dict[str, views.DatasetView],
        request: Request,
        login: DeskLogin,
    ) -> None:
        params = request.query_params
        self.q = params.get("q", "").strip()[:50]
        self.page = max(1, _int(params.get("page")))
        self.chosen: dict[str, str] = {}  # filter -> value, for the template and the links
        self.where: dict[str, str] = {}
        self.contains: dict[str, str] = {}
        for role in views.FILTER_ROLES:
            field = view.field(role)
            value = params.get(role, "").strip()[:50]
            if not field or not value or (role == "community" and not login.user.is_admin):
                continue  # staff are bound to their community by scope, whatever the URL says
            self.chosen[role] = value
            (self.contains if role == "tags" else self.where)[field] = value
        absent = params.get("absent", "")
        self.absent = absent if absent in views.comparable(view, catalog) else None
        if self.absent:
            self.chosen["absent"] = self.absent
        self.scope = scope_of(login)

    def selection(self) -> dict[str, Any]:
        """The filters as ``Snapshot.query``/``count`` arguments."""
        return {
            "where": self.where,
            "contains": self.contains,
            "search": self.q,
            "scope": self.scope,
            "absent_from": self.absent,
        }

    def query(self) -> str:
        pairs = {**self.chosen, **({"q": self.q} if self.q else {})}
        return "&".join(f"{k}={quote(v)}" for k, v in pairs.items())


def _int(text: str | None) -> int:
    return int(text) if text and text.isdigit() and len(text) < 7 else 1


def _view(desk: Desk, name: str) -> tuple[views.DatasetView, dict[str, views.DatasetView]]:
    """The dataset asked for, and every dataset (for the filters that compare with others)."""
    catalog = desk.views()
    if name not in catalog:
        raise Refused(404, NOT_FOUND)
    return catalog[name], catalog


@router.api_route("/datasets/{name}", methods=SHOWN, response_class=HTMLResponse)
def dataset(request: Request, name: str, login: Login, access: Viewing) -> Response:
    desk = desk_of(request)
    view, catalog = _view(desk, name)
    filters = Filters(view, catalog, request, login)
    selection = filters.selection()
    _limit_number_searches(desk, access, filters.q)
    total = desk.snapshot.count(name, **selection, access=access)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(filters.page, pages)
    frame = desk.snapshot.query(
        name, **selection, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, refs=True, access=access
    )
    headers, rows = views.table(view, frame, desk.sealer)
    context = {
        "view": view,
        "filters": filters,
        "choices": _choices(desk, view, filters.scope, login),
        "others": {name: catalog[name].title for name in views.comparable(view, catalog)},
        "catalog": catalog,
        "headers": headers,
        "rows": rows,
        "total": total,
        "page": page,
        "pages": pages,
    } | _revealed(access)
    return desk.render(request, "dataset.html", context, login=login)


def _choices(
    desk: Desk, view: views.DatasetView, scope: str | None, login: DeskLogin
) -> dict[str, list[str]]:
    """Values offered by each filter of the dataset, from the user's own records."""
    out = {}
    for role in views.FILTER_ROLES:
        field = view.field(role)
        if not field or (role == "community" and not login.user.is_admin):
            continue
        values = desk.distinct(view.name, field, scope)
        out[role] = views.tag_choices(values) if role == "tags" else values
    return out


@router.post("/datasets/{name}/export")
def export(request: Request, name: str, login: Login, csrf: Csrf = "", reason: Reason = "") -> Response:
    """The dataset page's rows (every page of them) as .xlsx: masked, unless a reason reveals them."""
    check_csrf(login.csrf, csrf)
    access = _reveal(login, csrf, reason) if reason.strip() else Access(actor=login.user.name)
    desk = desk_of(request)
    view, catalog = _view(desk, name)
    filters = Filters(view, catalog, request, login)
    selection = filters.selection()
    if desk.snapshot.count(name, **selection, access=access) > EXPORT_LIMIT:
        raise Refused(400, f"一次最多导出 {EXPORT_LIMIT} 条，请先用筛选条件缩小范围。")
    frame = desk.snapshot.query(name, **selection, access=access)
    folder = Path(tempfile.mkdtemp(prefix="desk-export-"))
    path = folder / "export.xlsx"
    desk.snapshot.export(frame, path, dataset=name, access=access, selection=selection)
    filename = f"{view.title}-{dt.date.today():%Y%m%d}.xlsx"
    return FileResponse(
        path,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={
            "Content-Disposition": f"attachment; filename=export.xlsx; filename*=UTF-8''{quote(filename)}"
        },
        background=BackgroundTask(_remove, folder),
    )


def _remove(folder: Path) -> None:
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()


# -- audit ---------------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    login: Login,
    actor: Text = "",
    action: Text = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    if not login.user.is_admin:
        raise Refused(403, "只有管理员可以查看审计记录。")
    desk = desk_of(request)
    catalog = desk.views()
    entries, total = desk.snapshot.audits(
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, actor=actor.strip() or None, action=action or None
    )
    rows = [
        {
            "at": views.local_time(entry.at, desk.settings.timezone),
            "actor": entry.actor,
            "action": entry.action,
            "title": catalog[entry.dataset].title if entry.dataset in catalog else (entry.dataset or ""),
            "reason": entry.reason or "",
            "rows": entry.rows,
            "detail": _detail(entry.detail, catalog.get(entry.dataset or "")),
        }
        for entry in entries
    ]
    context = {
        "rows": rows,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "actor": actor,
        "action": action,
        "catalog": catalog,
    }
    return desk.render(request, "audit.html", context, login=login)


def _mask_numbers(text: str) -> str:
    """Long digit runs in what was searched (an ID number, a phone) masked like the records."""
    return re.sub(
        r"\d{7,}[\dXx]?",
        lambda m: str(mask_value("phone" if len(m[0]) == 11 else "id_number", m[0])),
        text,
    )


def _detail(detail: str | None, view: views.DatasetView | None) -> str:
    """An audit entry's query in words, its personal values masked: the audit page shows whose
    data was revealed without revealing it again."""
    if not detail:
        return ""
    data = json.loads(detail)
    parts = []
    for key in ("where", "contains"):
        for field, value in (data.get(key) or {}).items():
            role = view.roles.get(field) if view else None
            label = view.label(field) if view else field
            shown = mask_value(role, value) if role in MASKED_ROLES else value
            parts.append(f"{label}={shown}")
    if data.get("search"):
        parts.append(f"检索「{_mask_numbers(data['search'])}」")
    if data.get("history_of"):
        parts.append(f"变更记录 {mask_value('id_number', data['history_of'])}")
    for key, label in (
        ("absent_from", "未登记于"),
        ("scope", "社区"),
        ("file", "文件"),
        ("client", "来源"),
        ("days", "保留天数"),
    ):
        if data.get(key):
            parts.append(f"{label} {data[key]}")
    return "；".join(parts)
