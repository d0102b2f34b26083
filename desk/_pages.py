"""The desk's pages: search, a person (一人一档), a household, datasets, export and the audit.

Every read passes the user's scope to the snapshot, so a staff member's community bounds what any
URL, form field or export parameter can reach. Pages come masked; a reason posted to the same URL
(显示完整信息) gives a reveal grant and sends the browser to the page under it (desk._grants), and the
snapshot writes the first revealed read of each page to the audit table.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from desk import _views as views
from desk._app import NOT_FOUND, Desk, Refused, check_csrf, current_login, desk_of, scope_of
from desk._grants import GRANT, Shown, page_key, with_grant
from desk._staff import DeskLogin
from machine import human_time, local_time, utc_now
from store import Access, RevealRefused, export_name, is_number_search, selection_words
from store._masking import mask_value

if TYPE_CHECKING:
    import pandas as pd

router = APIRouter()
PAGE_SIZE = 50
EXPORT_LIMIT = 100_000  # rows in one export; a bigger list is narrowed by filters first
Login = Annotated[DeskLogin, Depends(current_login)]
Text = Annotated[str, Query(max_length=50)]
Reason = Annotated[str, Form(max_length=200)]
Csrf = Annotated[str, Form(max_length=100)]
GrantToken = Annotated[str, Form(max_length=100)]
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


def _here(request: Request, path: str | None = None) -> str:
    """The request's page as grants know it (``path`` instead of the request's, for the export)."""
    return page_key(path or request.url.path, request.query_params.multi_items())


def _viewing(request: Request, login: Login) -> Access:
    """How a page shows its records: masked, unless its URL carries a live grant of this user and
    session that covers it; only the page's first read under the grant is audited."""
    token = request.query_params.get(GRANT, "")[:100]
    if not token:
        return Access(actor=login.user.name)
    grants, here = desk_of(request).grants, _here(request)
    granted = grants.find(token, login, here)
    until = human_time(granted.expires_at, desk_of(request).settings.timezone, fmt="%H:%M") if granted else ""
    request.state.grant = Shown(here, token, granted, until)  # for the page and its links (Desk.render)
    if granted is None:
        return Access(actor=login.user.name)
    audited_before = not grants.first_read(granted, here)
    return Access(
        actor=login.user.name, reveal=True, reason=granted.reason, grant=granted.id if audited_before else ""
    )


Viewing = Annotated[Access, Depends(_viewing)]


@router.post("/person/{token}")
@router.post("/household/{number}")
@router.post("/datasets/{name}")
def reveal(request: Request, login: Login, csrf: Csrf = "", reason: Reason = "") -> Response:
    """A reveal form: a grant for the page, and the page again under it by a GET (303), so Back and F5
    post nothing again."""
    access = _reveal(login, csrf, reason)
    here = _here(request)
    token = desk_of(request).grants.give(login, here, access.reason)
    return RedirectResponse(with_grant(here, token), status_code=303)


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


@router.get("/person/{token}", response_class=HTMLResponse)
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


@router.get("/household/{number}", response_class=HTMLResponse)
def household(request: Request, number: str, login: Login, access: Viewing) -> Response:
    desk = desk_of(request)
    catalog = desk.views()
    frame = desk.snapshot.household(number[:64], scope=scope_of(login), refs=True, access=access)
    if frame.empty:
        raise Refused(404, NOT_FOUND)
    home = views.household(catalog, frame, desk.sealer, views.household_datasets(desk.snapshot))
    context = {"number": number, "home": home, "catalog": catalog} | _revealed(access)
    return desk.render(request, "household.html", context, login=login)


# -- datasets ------------------------------------------------------------------------------------


@router.get("/datasets", response_class=HTMLResponse)
def datasets(request: Request, login: Login) -> Response:
    desk = desk_of(request)
    catalog = desk.views()
    counts = {name: desk.snapshot.count(name, scope=scope_of(login)) for name in catalog}
    return desk.render(request, "datasets.html", {"catalog": catalog, "counts": counts}, login=login)


FILTER_NAMES = {"community": "社区", "grid": "网格", "tags": "标签", "absent": "未登记于", "age": "年龄"}
AGE_PARAMS = ("age_min", "age_max")


class Filters:
    """A dataset page's filters, read from its query string (the page and its export alike).

    A filter the page does not have is refused, never ignored: a list that silently ignored ``grid=``
    looked like the grid's and held the whole community.
    """

    def __init__(
        self,
        view: views.DatasetView,
        catalog: dict[str, views.DatasetView],
        request: Request,
        login: DeskLogin,
    ) -> None:
        params = request.query_params
        offered = self.offered(view, catalog, login)
        for name in params:
            if name not in ("q", "page", GRANT, *offered, *(AGE_PARAMS if "age" in offered else ())):
                raise Refused(400, _unknown_filter(name, offered))
        self.q = params.get("q", "").strip()[:50]
        self.page = max(1, _int(params.get("page")))
        self.chosen: dict[str, str] = {}  # filter -> value, for the template and the links
        self.where: dict[str, str] = {}
        self.contains: dict[str, str] = {}
        for role in views.FILTER_ROLES:
            value = params.get(role, "").strip()[:50]
            if role in offered and value:
                self.chosen[role] = value
                (self.contains if role == "tags" else self.where)[str(view.field(role))] = value
        absent = params.get("absent", "")
        if absent and absent not in views.comparable(view, catalog):
            raise Refused(400, f"「未登记于」的取值 {absent!r} 不是可比对的数据集：请从下拉框里选。")
        self.absent = absent or None
        if self.absent:
            self.chosen["absent"] = absent
        self.ages = (_age(params.get(AGE_PARAMS[0], ""), "起"), _age(params.get(AGE_PARAMS[1], ""), "止"))
        for name, age in zip(AGE_PARAMS, self.ages, strict=True):
            if age is not None:
                self.chosen[name] = str(age)
        self.scope = scope_of(login)

    @staticmethod
    def offered(
        view: views.DatasetView, catalog: dict[str, views.DatasetView], login: DeskLogin
    ) -> list[str]:
        """The filters this page has for this user: staff are bound to their community by scope."""
        out = [
            role
            for role in views.FILTER_ROLES
            if view.field(role) and (role != "community" or login.user.is_admin)
        ]
        out += ["absent"] if views.comparable(view, catalog) else []
        return out + (["age"] if view.has_age else [])

    def selection(self) -> dict[str, Any]:
        """The filters as ``Snapshot.query``/``count`` arguments."""
        return {
            "where": self.where,
            "contains": self.contains,
            "search": self.q,
            "scope": self.scope,
            "absent_from": self.absent,
            "ages": self.ages if self.ages != (None, None) else None,
        }

    def query(self) -> str:
        pairs = {**self.chosen, **({"q": self.q} if self.q else {})}
        return "&".join(f"{k}={quote(v)}" for k, v in pairs.items())


def _unknown_filter(name: str, offered: list[str]) -> str:
    have = "、".join(FILTER_NAMES[o] for o in offered) or "没有筛选条件"
    return f"本页没有筛选条件 {name[:40]!r}：本页可以按检索内容和 {have} 筛选。请从页面上的筛选框选择后重试。"


def _age(text: str, end: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not (text.isdigit() and int(text) <= 150):
        raise Refused(400, f"年龄{end}须是 0 到 150 之间的整数（如 60），不是 {text[:20]!r}。")
    return int(text)


def _int(text: str | None) -> int:
    return int(text) if text and text.isdigit() and len(text) < 7 else 1


def _view(desk: Desk, name: str) -> tuple[views.DatasetView, dict[str, views.DatasetView]]:
    """The dataset asked for, and every dataset (for the filters that compare with others)."""
    catalog = desk.views()
    if name not in catalog:
        raise Refused(404, NOT_FOUND)
    return catalog[name], catalog


@router.get("/datasets/{name}", response_class=HTMLResponse)
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
        "choices": filter_choices(desk, view, filters.scope, login),
        "others": {name: catalog[name].title for name in views.comparable(view, catalog)},
        "catalog": catalog,
        "headers": headers,
        "rows": rows,
        "total": total,
        "page": page,
        "pages": pages,
    } | _revealed(access)
    return desk.render(request, "dataset.html", context, login=login)


def filter_choices(
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
def export(
    request: Request, name: str, login: Login, csrf: Csrf = "", reason: Reason = "", grant: GrantToken = ""
) -> Response:
    """The dataset page's rows (every page of them) as .xlsx: masked, unless the page's grant or a
    typed reason reveals them."""
    check_csrf(login.csrf, csrf)
    access = _exporting(request, login, csrf, reason, grant)
    desk = desk_of(request)
    view, catalog = _view(desk, name)
    filters = Filters(view, catalog, request, login)
    selection = filters.selection()
    if desk.snapshot.count(name, **selection, access=access) > EXPORT_LIMIT:
        raise Refused(400, f"一次最多导出 {EXPORT_LIMIT} 条，请先用筛选条件缩小范围。")
    frame = desk.snapshot.query(name, **selection, access=access)
    return xlsx_download(desk, frame, view.title, dataset=name, access=access, selection=selection)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_download(
    desk: Desk,
    frame: pd.DataFrame,
    title: str,
    *,
    dataset: str,
    access: Access,
    selection: Mapping[str, Any],
    titles: Mapping[str, str] | None = None,
    then: Callable[[Path], None] | None = None,
) -> FileResponse:
    """``frame`` as the .xlsx staff download, through ``Snapshot.export`` (notes, formula-safe, 0600,
    audited) in a private folder removed once it is sent; ``then`` may add to the file first."""
    zone = desk.settings.timezone
    # Written under the name it is downloaded by, so the audit names the file staff hold.
    folder = Path(tempfile.mkdtemp(prefix="desk-export-"))
    path = folder / export_name(title, local_time(utc_now(), zone).date())
    desk.snapshot.export(
        frame,
        path,
        dataset=dataset,
        access=access,
        selection=selection,
        titles=titles or desk.titles,
        zone=zone,
        communities=desk.places.names,
    )
    if then is not None:
        then(path)
    return FileResponse(
        path,
        media_type=XLSX,
        headers={
            "Content-Disposition": f"attachment; filename=export.xlsx; filename*=UTF-8''{quote(path.name)}"
        },
        background=BackgroundTask(remove_folder, folder),
    )


def _exporting(request: Request, login: DeskLogin, csrf: str, reason: str, grant: str) -> Access:
    """An export's access: revealed by a live grant that covers the dataset page it exports (the page's
    filters are the export's query), or by a typed reason; masked without either."""
    if grant:
        page = _here(request, request.url.path.removesuffix("/export"))
        granted = desk_of(request).grants.find(grant, login, page)
        if granted is None:
            raise Refused(400, "显示完整信息已结束：请刷新列表页，重新填写理由后再导出。")
        return Access(actor=login.user.name, reveal=True, reason=granted.reason)
    return _reveal(login, csrf, reason) if reason.strip() else Access(actor=login.user.name)


def remove_folder(folder: Path) -> None:
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
            "detail": _detail(entry.detail, catalog.get(entry.dataset or ""), desk.titles, desk.places.names),
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


def _detail(
    detail: str | None, view: views.DatasetView | None, titles: dict[str, str], communities: Mapping[str, str]
) -> str:
    """An audit entry's query in words, its personal values masked: the audit page shows whose
    data was revealed without revealing it again."""
    if not detail:
        return ""
    data = json.loads(detail)
    labels, roles = (view.labels, view.roles) if view else ({}, {})
    parts = [selection_words(data, labels, roles, titles, communities)]
    if data.get("history_of"):
        parts.append(f"变更记录 {mask_value('id_number', data['history_of'])}")
    for key, label in (
        ("file", "文件"),
        ("client", "来源"),
        ("days", "保留天数"),
        ("list", "排摸清单"),
        ("household", "户号"),
    ):
        if data.get(key):
            parts.append(f"{label} {data[key]}")
    return "；".join(filter(None, parts))
