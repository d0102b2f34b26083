"""排摸 pages: the lists of a community, making one, walking it on a phone, its sheet, .xlsx and report.

A list belongs to a community: staff see and mark only their own community's (any other is NOT_FOUND,
as a record of another community is), admins every community's. Every page is masked; the sheet,
the .xlsx and the report are audited as the exports they are, and each mark is audited with the
list and the household only. Forms post and are answered with a redirect to a GET (Back and F5
post nothing again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import pandas as pd
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from desk import _views as views
from desk import _visits as visits
from desk._app import NOT_FOUND, Desk, Refused, check_csrf, desk_of
from desk._pages import FILTER_NAMES, Csrf, Filters, Login, filter_choices, xlsx_download
from desk._staff import DeskLogin
from machine import utc_now
from store import Access, cells_as_text

router = APIRouter()
NO_PERSONS = "还没有采集到带身份证号和户号的人员数据，无法生成排摸清单：请先采集人口信息。"
Title = Annotated[str, Form(max_length=100)]
Household = Annotated[str, Form(max_length=64)]
Outcome = Annotated[str, Form(max_length=20)]
Note = Annotated[str, Form(max_length=1000)]  # refused past NOTE_CHARS with words, not a bare 400


def install(app: FastAPI) -> None:
    """The 排摸 tables beside the snapshot, and the pages."""
    app.state.visits = visits.Visits(app.state.desk.snapshot.engine)
    app.include_router(router)


def _visits(request: Request) -> visits.Visits:
    return request.app.state.visits


def _only(request: Request, *allowed: str) -> None:
    """A page takes only the parameters it offers: a mistyped one is refused, never ignored."""
    for name in request.query_params:
        if name not in allowed:
            have = "、".join(allowed) or "任何参数"
            raise Refused(400, f"本页没有参数 {name[:40]!r}：本页只接受 {have}。请从页面上的链接进入。")


def _persons(desk: Desk) -> tuple[views.DatasetView, dict[str, views.DatasetView]]:
    catalog = desk.views()
    persons = visits.persons_view(catalog)
    if persons is None:
        raise Refused(400, NO_PERSONS)
    return persons, catalog


def _mine(request: Request, login: DeskLogin, list_id: int) -> visits.VisitList:
    """The list, if the user's community may see it; NOT_FOUND as for any record out of scope."""
    made = _visits(request).get(list_id)
    if made is None or not (login.user.is_admin or made.community == login.user.scope):
        raise Refused(404, NOT_FOUND)
    return made


# -- the lists and making one ------------------------------------------------------------------------


@router.get("/visits", response_class=HTMLResponse)
def index(request: Request, login: Login) -> Response:
    _only(request)
    desk = desk_of(request)
    catalog = desk.views()
    persons = visits.persons_view(catalog)
    lists = _visits(request).lists(None if login.user.is_admin else login.user.scope)
    context: dict[str, Any] = {
        "lists": lists,
        "progress": _visits(request).progress(m.id for m in lists if m.id is not None),
        "persons": persons,
        "catalog": catalog,
        "made_at": {m.id: views.local_time(m.made_at, desk.settings.timezone) for m in lists},
    }
    if persons is not None:
        scope = None if login.user.is_admin else login.user.scope
        context["choices"] = filter_choices(desk, persons, scope, login)
        context["others"] = {n: catalog[n].title for n in views.comparable(persons, catalog)}
    return desk.render(request, "visits.html", context, login=login)


def _planned(request: Request, login: DeskLogin) -> tuple[visits.VisitList, views.DatasetView]:
    """The list the query string asks for (not saved yet), refused as the persons page refuses a filter;
    a list needs a grid, and an admin names its community."""
    desk = desk_of(request)
    persons, catalog = _persons(desk)
    filters = Filters(persons, catalog, request, login)
    offered = Filters.offered(persons, catalog, login)
    for name in ("q", "page"):  # the persons page has them; a list is made by its filters alone
        if name in request.query_params:
            have = "、".join(FILTER_NAMES[o] for o in offered)
            raise Refused(
                400, f"排摸清单没有筛选条件 {name!r}：清单按 {have} 生成，请从页面上的筛选框选择后重试。"
            )
    community = filters.chosen.get("community") if login.user.is_admin else login.user.scope
    if not community:
        raise Refused(400, "请选择社区：排摸清单属于一个社区。")
    grid = filters.chosen.get("grid")
    if not grid:
        raise Refused(400, "请选择网格：排摸清单按网格生成。")
    community_field = persons.field("community")
    selection = filters.selection()
    where = {k: v for k, v in selection["where"].items() if k != community_field}
    stored = {
        "where": where,
        "contains": selection["contains"],
        "absent_from": selection["absent_from"],
        "ages": list(selection["ages"]) if selection["ages"] else None,
    }
    made = visits.VisitList(
        title=visits.title_of(grid, stored, desk.titles),
        community=community,
        grid=grid,
        selection=json.dumps(stored, ensure_ascii=False),
        persons=persons.name,
        households=visits.households_dataset(desk.snapshot, persons.name),
        made_by=login.user.name,
        made_at=utc_now(),
    )
    return made, persons


@router.get("/visits/new", response_class=HTMLResponse)
def preview(request: Request, login: Login) -> Response:
    """What a list of these filters would cover, and the button that makes it."""
    desk = desk_of(request)
    made, persons = _planned(request, login)
    chosen = made.chosen()
    context = {
        "made": made,
        "query": request.url.query,
        "people": desk.snapshot.count(persons.name, **chosen),
        "households": len(visits.choose(desk.snapshot, persons, made.households, made)),
    }
    return desk.render(request, "visits_new.html", context, login=login)


@router.post("/visits/new")
def make(request: Request, login: Login, csrf: Csrf = "", title: Title = "") -> Response:
    check_csrf(login.csrf, csrf)
    desk = desk_of(request)
    made, persons = _planned(request, login)
    made.title = title.strip() or made.title
    households = visits.choose(desk.snapshot, persons, made.households, made)
    if not households:
        raise Refused(400, "没有符合条件的住户：请放宽筛选条件后重试。")
    saved = _visits(request).make(made, households)
    return RedirectResponse(f"/visits/{saved.id}", status_code=303)


# -- one list ----------------------------------------------------------------------------------------


def _blocks(request: Request, login: DeskLogin, made: visits.VisitList) -> list[visits.Block]:
    desk = desk_of(request)
    assert made.id is not None
    return visits.blocks(
        desk.snapshot,
        desk.views(),
        made,
        _visits(request).households(made.id),
        _visits(request).marks(made.id),
        desk.sealer,
        Access(actor=login.user.name),
    )


def _list_context(request: Request, made: visits.VisitList, found: list[visits.Block]) -> dict[str, Any]:
    checked = sum(b.mark is not None for b in found)
    return {
        "made": made,
        "blocks": found,
        "checked": checked,
        "made_at": views.local_time(made.made_at, desk_of(request).settings.timezone),
        "outcomes": visits.OUTCOMES,
        "relation": desk_of(request).views()[made.persons].field("relation") is not None,
    }


@router.get("/visits/{list_id}", response_class=HTMLResponse)
def one(request: Request, list_id: int, login: Login) -> Response:
    _only(request)
    made = _mine(request, login, list_id)
    context = _list_context(request, made, _blocks(request, login, made))
    return desk_of(request).render(request, "visits_list.html", context, login=login)


@router.get("/visits/{list_id}/sheet", response_class=HTMLResponse)
def sheet(request: Request, list_id: int, login: Login) -> Response:
    """The printable A4 visit sheet: personal data leaves on paper, so it is audited as an export."""
    _only(request)
    desk = desk_of(request)
    made = _mine(request, login, list_id)
    found = _blocks(request, login, made)
    detail = made.chosen() | {"list": list_id}
    rows = sum(len(b.members) for b in found)
    desk.snapshot.audit(Access(actor=login.user.name), "visit_sheet", made.persons, detail, rows)
    context = _list_context(request, made, found) | {
        "printed_at": views.local_time(utc_now(), desk.settings.timezone)
    }
    return desk.render(request, "visits_sheet.html", context, login=login)


@router.post("/visits/{list_id}.xlsx")
def workbook(request: Request, list_id: int, login: Login, csrf: Csrf = "") -> Response:
    """The list as .xlsx, a row per member (masked), audited as an export."""
    check_csrf(login.csrf, csrf)
    desk = desk_of(request)
    made = _mine(request, login, list_id)
    frame = visits.member_rows(
        desk.views()[made.persons], _blocks(request, login, made), desk.settings.timezone
    )
    return _download(request, login, made, frame, made.title, "排摸清单")


@router.post("/visits/{list_id}/report.xlsx")
def report(request: Request, list_id: int, login: Login, csrf: Csrf = "") -> Response:
    """The 排摸 report: counts per grid on its first sheet, the households with their outcome after."""
    check_csrf(login.csrf, csrf)
    desk = desk_of(request)
    made = _mine(request, login, list_id)
    found = _blocks(request, login, made)
    frame = visits.report_rows(made, found, desk.settings.timezone)
    assert made.id is not None
    counts = visits.counts(made, _visits(request).households(made.id), _visits(request).marks(made.id))
    return _download(request, login, made, frame, f"{made.title} 排摸报告", "走访明细", counts)


def _download(
    request: Request,
    login: DeskLogin,
    made: visits.VisitList,
    frame: pd.DataFrame,
    title: str,
    sheet: str,
    summary: list[dict[str, Any]] | None = None,
) -> Response:
    """``frame`` as an .xlsx (the desk's export), with a ``summary`` sheet put first."""
    return xlsx_download(
        desk_of(request),
        frame,
        title,
        dataset=made.persons,
        access=Access(actor=login.user.name),
        selection=made.chosen() | {"list": made.id},
        titles={**desk_of(request).titles, made.persons: sheet},
        then=(lambda path: _put_first(path, "汇总", summary)) if summary else None,
    )


def _put_first(path: Path, name: str, rows: list[dict[str, Any]]) -> None:
    """A sheet of ``rows`` (header first) before the others of the workbook at ``path``."""
    import openpyxl
    from openpyxl.styles import Font

    book = openpyxl.load_workbook(path)
    cells = book.create_sheet(name, 0)
    cells.append(list(rows[0]))
    for row in rows:
        cells.append(list(row.values()))
    for cell in cells[1]:
        cell.font = Font(bold=True)
    cells_as_text(cells)  # a grid's name is harvested text: it must not run as a formula
    book.active = 0
    book.save(path)  # into the same file, which keeps its owner-only mode


# -- the check mode --------------------------------------------------------------------------------


@router.get("/visits/{list_id}/check", response_class=HTMLResponse)
def check(request: Request, list_id: int, login: Login) -> Response:
    """One household at a time: the one asked for (to mark again), else the next unchecked."""
    _only(request, "household", "done")
    made = _mine(request, login, list_id)
    found = _blocks(request, login, made)
    asked = request.query_params.get("household")
    if asked is not None:
        current = next((b for b in found if b.household == asked), None)
        if current is None:
            raise Refused(404, NOT_FOUND)
    else:
        current = next((b for b in found if b.mark is None), None)
    done = next((b for b in found if b.household == request.query_params.get("done")), None)
    assert made.id is not None
    history = _visits(request).history(made.id, current.household) if current else []
    context = _list_context(request, made, found) | {
        "current": current,
        "done": done,
        "history": [(views.local_time(m.at, desk_of(request).settings.timezone), m) for m in history],
        "note_chars": visits.NOTE_CHARS,
    }
    return desk_of(request).render(request, "visits_check.html", context, login=login)


@router.post("/visits/{list_id}/check")
def mark(
    request: Request,
    list_id: int,
    login: Login,
    csrf: Csrf = "",
    household: Household = "",
    outcome: Outcome = "",
    note: Note = "",
) -> Response:
    """A household's mark, then the next unchecked household by a GET (303)."""
    check_csrf(login.csrf, csrf)
    made = _mine(request, login, list_id)
    if household not in _visits(request).households(list_id):
        raise Refused(404, NOT_FOUND)
    if outcome not in visits.OUTCOMES:
        raise Refused(400, f"请选择走访结果：{'、'.join(visits.OUTCOMES.values())}。")
    if len(note.strip()) > visits.NOTE_CHARS:
        raise Refused(400, f"备注最多 {visits.NOTE_CHARS} 字，现有 {len(note.strip())} 字：请缩短后重试。")
    _visits(request).mark(list_id, household, outcome, note.strip(), login.user.name)
    detail = {"list": list_id, "household": household}
    desk_of(request).snapshot.audit(Access(actor=login.user.name), "visit", made.persons, detail, 1)
    return RedirectResponse(f"/visits/{list_id}/check?done={quote(household)}", status_code=303)
