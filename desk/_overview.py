"""数据概览: one community's counts at a glance, per grid, with how they moved over the last harvests.

Every number is a link to the dataset page's list it counts (its own filters, so the list says the same
number), drawn as server-side SVG bars: the pages stay script-free and the CSP's ``style-src 'self'``
holds, as SVG presentation attributes (fill, width) are not styles. Only counts leave the store here,
so nothing is masked or audited: a grid, a tag or a category names no one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape

from desk import _views as views
from desk._app import Desk, Refused, desk_of
from desk._pages import Filters, Login
from desk._staff import DeskLogin
from store import Counts, Measure, community_counts

router = APIRouter()
NO_GRID = "未划网格"  # records whose household has no current record: no list filters them
TOTAL = "合计"
RECORDS = "记录数"
# The bar chart's geometry, in viewBox units: it scales to the width it is given (width="100%").
WIDTH, ROW, LABEL, BAR = 320, 26, 78, 170
BAR_FILL, TEXT_FILL, UP_FILL, DOWN_FILL = "#4a7fd4", "#1f2933", "#1e7b34", "#b3261e"
SPARK_STEP, SPARK_HEIGHT = 8, 20


@dataclass(frozen=True)
class Cell:
    count: int
    href: str | None  # the list it counts; None where the dataset page has no filter for it
    change: str  # since the previous harvest: "+3", "−1", "0"; "" with one harvest
    spark: Markup  # the count after each of the last harvests, as small bars


@dataclass(frozen=True)
class Row:
    grid: str
    cells: list[Cell]
    total: bool = False


@dataclass(frozen=True)
class Section:
    """One table of the page: a dataset's records, or its counts by the values of one field."""

    title: str
    heads: list[str]
    rows: list[Row]
    charts: list[tuple[str, Markup]]  # one bar chart per column: its title and its SVG


@router.get("/overview", response_class=HTMLResponse)
def overview(request: Request, login: Login) -> Response:
    desk = desk_of(request)
    scope = _community(desk, request, login)
    catalog = desk.views()
    counts = community_counts(desk.snapshot, scope) if scope else []
    sections = [s for c in counts if c.dataset in catalog for s in sections_of(c, catalog, login, scope)]
    harvested = next((c.harvests for c in counts if c.dataset in catalog and len(c.harvests) > 1), [])
    context = {
        "scope": scope,
        "scopes": desk.scopes() if login.user.is_admin else [],
        "sections": sections,
        "harvested": [views.local_time(at, desk.settings.timezone) for at in harvested],
        "catalog": catalog,
    }
    return desk.render(request, "overview.html", context, login=login)


def _community(desk: Desk, request: Request, login: DeskLogin) -> str | None:
    """The community the page counts: staff's own; an admin's pick, else the first one harvested."""
    admin = login.user.is_admin
    for name in request.query_params:
        if name != "community" or not admin:
            have = "可以用「社区」（community）选择社区" if admin else "只显示您所在社区，不需要任何参数"
            raise Refused(400, f"本页没有参数 {name[:40]!r}：数据概览{have}，请从页面上选择后重试。")
    if not admin:
        return login.user.scope
    known = desk.scopes()
    picked = request.query_params.get("community", "").strip()
    if picked and picked not in known:
        raise Refused(400, f"没有社区 {picked[:40]!r} 的数据：请从页面上的下拉框选择社区后重试。")
    return picked or next(iter(known), None)


def sections_of(
    counts: Counts, catalog: dict[str, views.DatasetView], login: DeskLogin, scope: str
) -> list[Section]:
    """The tables of one dataset's counts: its records, then one per tags or category field."""
    view = catalog[counts.dataset]
    offered = Filters.offered(view, catalog, login)
    # An admin's list is narrowed to the community by its filter; staff are bound to theirs anyway.
    base = {"community": scope} if login.user.is_admin and "community" in offered else {}
    groups: dict[str | None, list[Measure]] = {}
    for measure in counts.measures:
        groups.setdefault(measure.field, []).append(measure)
    out = []
    for field, measures in groups.items():
        heads = [RECORDS if m.field is None else str(m.value) for m in measures]
        rows = [
            Row(
                NO_GRID if grid is None else grid,
                [_cell(counts, view, offered, base, m, grid) for m in measures],
            )
            for grid in counts.grids
        ]
        rows.append(
            Row(TOTAL, [_cell(counts, view, offered, base, m, None, total=True) for m in measures], True)
        )
        charts = []
        for i, head in enumerate(heads):
            bars = [(row.grid, row.cells[i].count, row.cells[i].change) for row in rows[:-1]]
            caption = f"{head}（{TOTAL} {rows[-1].cells[i].count}）"
            charts.append((caption, bar_chart(f"{view.title}：各网格{head}", bars)))
        title = view.title if field is None else f"{view.title} · 按{view.label(field)}"
        out.append(Section(title, heads, rows, charts))
    return out


def _cell(
    counts: Counts,
    view: views.DatasetView,
    offered: list[str],
    base: dict[str, str],
    measure: Measure,
    grid: str | None,
    *,
    total: bool = False,
) -> Cell:
    trend = counts.total_trend(measure) if total else counts.trend(measure, grid)
    count = counts.total(measure) if total else counts.count(measure, grid)
    href = None if grid is None and not total else list_link(view, offered, base, measure, grid)
    return Cell(count, href, change_text(trend), sparkline(trend))


def list_link(
    view: views.DatasetView, offered: list[str], base: dict[str, str], measure: Measure, grid: str | None
) -> str | None:
    """The dataset page's list of what ``measure`` counts in ``grid`` (None: every grid), by the page's
    own filters; None when it has no filter for it."""
    params = dict(base)
    wanted = [("grid", grid)] if grid is not None else []
    if measure.field is not None:
        wanted.append(("tags" if measure.tags else measure.field, measure.value))
    for name, value in wanted:
        if name not in offered or value is None:
            return None
        params[name] = value
    query = urlencode(params, quote_via=quote)
    return f"/datasets/{quote(view.name)}" + (f"?{query}" if query else "")


def change_text(trend: Sequence[int]) -> str:
    """The change since the previous harvest as staff read it: "+3", "−1", "0"; "" without one."""
    if len(trend) < 2:
        return ""
    change = trend[-1] - trend[-2]
    return f"+{change}" if change > 0 else f"−{-change}" if change < 0 else "0"


def bar_chart(title: str, bars: Sequence[tuple[str, int, str]]) -> Markup:
    """Horizontal bars, one per (label, count, change), the longest the widest count."""
    top = max((count for _, count, _ in bars), default=0) or 1
    height = ROW * max(len(bars), 1)
    parts = [
        f'<svg class="ov-bars" viewBox="0 0 {WIDTH} {height}" width="100%" role="img"'
        f' aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, count, change) in enumerate(bars):
        y, width = i * ROW, round(BAR * count / top, 1)
        fill = UP_FILL if change.startswith("+") else DOWN_FILL if change.startswith("−") else TEXT_FILL
        moved = f'<tspan fill="{fill}"> {escape(change)}</tspan>' if change and change != "0" else ""
        parts.append(
            f'<text x="0" y="{y + 17}" font-size="13" fill="{TEXT_FILL}">{escape(label)}</text>'
            f'<rect x="{LABEL}" y="{y + 5}" width="{width}" height="{ROW - 10}" rx="2" fill="{BAR_FILL}"/>'
            f'<text x="{LABEL + width + 5}" y="{y + 17}" font-size="13" fill="{TEXT_FILL}">'
            f"{count}{moved}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(trend: Sequence[int]) -> Markup:
    """The count after each harvest as small bars, the last one dark; nothing for a single harvest."""
    if len(trend) < 2:
        return Markup("")
    low, high = min(trend), max(trend)
    said = escape(f"最近 {len(trend)} 次采集后：" + "、".join(str(n) for n in trend))
    parts = [
        f'<svg class="ov-spark" viewBox="0 0 {SPARK_STEP * len(trend)} {SPARK_HEIGHT}"'
        f' width="{SPARK_STEP * len(trend) * 1.5:g}" height="{SPARK_HEIGHT * 1.2:g}" role="img"'
        f' aria-label="{said}"><title>{said}</title>'
    ]
    for i, count in enumerate(trend):
        # The lowest count keeps a stub: a bar of height 0 would read as "none".
        height = SPARK_HEIGHT / 2 if high == low else 3 + (SPARK_HEIGHT - 3) * (count - low) / (high - low)
        fill = BAR_FILL if i == len(trend) - 1 else "#a9c1e8"
        parts.append(
            f'<rect x="{i * SPARK_STEP + 1}" y="{SPARK_HEIGHT - height:.1f}" width="{SPARK_STEP - 2}"'
            f' height="{height:.1f}" fill="{fill}"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
